"""clv.decisions: see README's layout section."""
