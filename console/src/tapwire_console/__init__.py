"""tapwire console: the web application people sign in to, and the account administration API it uses."""
