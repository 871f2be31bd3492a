"""The Azure Functions app: registers the blueprints of ``functions/`` and nothing else."""

import azure.functions as func

from functions import assets
from functions import authorize
from functions import backchannel
from functions import callback
from functions import compte
from functions import confirm
from functions import discovery
from functions import health
from functions import jwks
from functions import keys
from functions import logout
from functions import pair
from functions import par
from functions import sweep
from functions import token
from functions import userinfo

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (
    discovery.bp,
    jwks.bp,
    par.bp,
    authorize.bp,
    callback.bp,
    pair.bp,
    confirm.bp,
    token.bp,
    userinfo.bp,
    logout.bp,
    compte.bp,
    assets.bp,
    health.bp,
    sweep.bp,
    keys.bp,
    backchannel.bp,
):
    app.register_functions(blueprint)
