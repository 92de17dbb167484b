"""clv.models: see README's layout section."""
