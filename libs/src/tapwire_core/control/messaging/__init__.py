"""Control-plane tables of the messaging service, and the consent API other services (privacy) write to."""
