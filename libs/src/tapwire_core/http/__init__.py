"""HTTP building blocks shared by every service: error shape, authentication, injected context."""
