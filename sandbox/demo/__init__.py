"""The demo service ("portail de démonstration"): a relying party built with Authlib, as PSC_BAS."""
