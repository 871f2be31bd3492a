"""Offline checks of the infrastructure code: Bicep parsed with pycep, shell scripts, signing-key tool."""
