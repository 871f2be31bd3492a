// Parameters of one broker deployment. Copy this file per environment (prod, recette, ...),
// adjust it, and pass it to infra/deploy.sh --parameters. Every parameter of main.bicep is
// described in docs/deploy.md; those not set here keep main.bicep's defaults.
//
// One value never lives in this file; infra/deploy.sh provides it through the environment:
//   PSC_CLIENT_SECRET      the secret the ANS gave with the PSC client id (asked for on the first
//                          deployment when it is not in Key Vault yet; empty later = keep it).
// infra/deploy.sh refuses this file as long as it holds the example digital service below (its
// all-zero secret hash): replace it with your own.
using './main.bicep'

param location = 'francecentral'
param baseName = 'pscbroker'
// environmentName is also part of the deployment records' names (psc-sans-couture-<environmentName>):
// keep it a plain quoted value, infra/deploy.sh reads it from this file.
param environmentName = 'prod'
param tags = {
  application: 'psc-sans-couture'
  environment: 'prod'
  owner: 'dsi@chu-exemple.fr'
}

// Monitoring: who receives the alerts (docs/deploy.md §5 quater), and their thresholds.
param alertEmail = 'exploitation@chu-exemple.fr'
param alertRefusalThreshold = 20
param alertUnavailableRatePercent = 5

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
// when the Conditional Access policy bound to it is satisfied, but also when no ENABLED policy is bound
// to it: run infra/conditional-access.sh (--auth-context c1, the default), which creates the context and
// binds the policy, then --enable, and finally --check. 'none' disables the check (a policy on the app
// only, invisible to the broker): not recommended.
param entraRequiredAcrs = 'c1'
// Only users and groups assigned to the enterprise application sign in (infra/deploy.sh --group).
param entraAssignmentRequired = true
param entraMaxAuthAge = 14400

// Pro Santé Connect. BAS (sandbox):
// https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration
param pscDiscoveryUrl = 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration'
param pscClientId = 'chu-exemple-psc-sans-couture'
// How ANS registered the broker at PSC's token endpoint: 'client_secret_basic' (the secret below, from
// PSC_CLIENT_SECRET) or 'private_key_jwt' (the broker's signing key; ANS registers <issuer>/jwks).
param pscTokenAuthMethod = 'client_secret_basic'
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
// A pairing is proven again with CPS / e-CPS after this many days (docs/deploy.md).
param pairingReverifyDays = 365
// Monthly signing-key rotation by the app itself: see docs/deploy.md §6 before turning it on (a role to grant).
param keyRotationEnabled = false
