"""clv.ops: see README's layout section."""
