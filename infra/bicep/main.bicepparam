// Parameters of one broker deployment. Copy this file per environment (prod, recette, ...),
// adjust it, and pass it to infra/deploy.sh --parameters. Every parameter of main.bicep is
// described in docs/deploy.md; those not set here keep main.bicep's defaults.
//
// Two values never live in this file; infra/deploy.sh provides them through the environment:
//   PSC_CLIENT_SECRET      the secret the ANS gave with the PSC client id (asked for on the first
//                          deployment when it is not in Key Vault yet; empty later = keep it);
//   DEPLOYER_PRINCIPAL_ID  object id of the signed-in administrator, given Key Vault Secrets
//                          Officer to write the signing key (deploy.sh fills it in).
using './main.bicep'

param location = 'francecentral'
param baseName = 'pscbroker'
param environmentName = 'prod'
param tags = {
  application: 'psc-sans-couture'
  environment: 'prod'
  owner: 'dsi@chu-exemple.fr'
}

// Flex Consumption sizing.
param alwaysReadyInstances = 1
param perInstanceConcurrency = 16
param instanceMemoryMB = 2048
param maximumInstanceCount = 40

// Public address: leave empty to use the Function App's default host name.
param customDomain = ''

// Entra ID. entraAllowedTenants defaults to the deployment's tenant; list others (comma-separated
// tenant ids) only if their users must sign in too.
// entraRequiredAcrs: the authentication context every ID token must carry (acrs). Entra includes c1
// only when the Conditional Access policy bound to it is satisfied: run infra/conditional-access.sh
// (--auth-context c1, the default), which creates the context and binds the policy to it. 'none'
// disables the check (a policy on the app only, invisible to the broker): not recommended.
param entraRequiredAcrs = 'c1'
param entraMaxAuthAge = 14400

// Pro Santé Connect. BAS (sandbox):
// https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration
param pscDiscoveryUrl = 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration'
param pscClientId = 'chu-exemple-psc-sans-couture'
param pscClientSecret = readEnvironmentVariable('PSC_CLIENT_SECRET', '')

// Digital services (RPs) allowed to use the broker: a JSON list of RFC 7591 client metadata.
// client_secret is stored hashed — replace the placeholder below with the service's own:
//   printf '%s' '<secret>' | sha256sum   ->   "sha256:<the 64 hex digits>"
param clients = '''
[
  {
    "client_id": "dossier-patient",
    "client_name": "Dossier patient informatisé",
    "redirect_uris": ["https://dpi.chu-exemple.fr/oidc/callback"],
    "post_logout_redirect_uris": ["https://dpi.chu-exemple.fr/"],
    "token_endpoint_auth_method": "client_secret_basic",
    "client_secret": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "scope": "openid scope_all"
  }
]
'''

param signingKeySecretName = 'broker-signing-key'
param showMire = false
param sessionMaxAge = 14400
param sessionIdleTimeout = 1800
param accessTokenTtl = 120

// Filled in by infra/deploy.sh (the signed-in administrator); set it yourself for a pipeline.
param deployerPrincipalId = readEnvironmentVariable('DEPLOYER_PRINCIPAL_ID', '')
param deployerPrincipalType = readEnvironmentVariable('DEPLOYER_PRINCIPAL_TYPE', 'User')
