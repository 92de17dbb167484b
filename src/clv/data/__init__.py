"""clv.data: see README's layout section."""
