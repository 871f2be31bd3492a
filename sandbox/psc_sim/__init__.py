"""Pro Santé Connect simulator for the sandbox: realm ``esante-wallet``, wallet page, PSC personas."""

from sandbox.psc_sim.app import PscClient
from sandbox.psc_sim.app import PscSimConfig
from sandbox.psc_sim.app import create_app
from sandbox.psc_sim.app import sandbox_config
from sandbox.psc_sim.personas import PERSONAS
from sandbox.psc_sim.personas import PscPersona

__all__ = ["PERSONAS", "PscClient", "PscPersona", "PscSimConfig", "create_app", "sandbox_config"]
