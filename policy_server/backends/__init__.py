"""Policy backends: one module each, selected by name through policy_server.backend.BACKENDS."""
