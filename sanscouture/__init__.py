"""The sans-couture broker: an OpenID Connect provider that signs health professionals in through the
hospital's Entra ID and issues tokens carrying their Pro Santé Connect identity."""
