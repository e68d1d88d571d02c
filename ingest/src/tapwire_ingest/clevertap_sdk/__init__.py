"""CleverTap client SDKs (Web SDK ``/a``, mobile SDKs ``/a1``): their wire protocol into tapwire."""
