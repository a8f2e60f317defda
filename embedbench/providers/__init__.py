"""Provider adapters: one module per family, sharing `base.fetch`."""
