"""The Azure Functions app: registers the blueprints of ``functions/`` and nothing else."""

import azure.functions as func

from functions import health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (health.bp,):
    app.register_functions(blueprint)
