"""Email providers' bounce, complaint and delivery webhooks: each verified its own way, then read into notices."""
