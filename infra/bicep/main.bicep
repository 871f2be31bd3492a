// PSC sans couture broker — the whole deployment into one resource group.
//   az deployment group create --resource-group <rg> --parameters infra/bicep/main.bicepparam
// (infra/deploy.sh runs it, publishes the code and bootstraps the signing key; docs/deploy.md).
// Raw resources only (no registry modules): everything here can be read and checked offline.
// The Microsoft Graph extension (bicepconfig.json) needs Bicep >= 0.36.1: run `az bicep upgrade`.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Naming and placement
// ---------------------------------------------------------------------------------------------

@description('Azure region of every resource (the resource group\'s by default). Flex Consumption must be offered there.')
param location string = resourceGroup().location

@description('Short name of the product, used to build resource names (letters, digits, hyphens).')
@minLength(2)
@maxLength(12)
param baseName string = 'pscbroker'

@description('Environment label (prod, recette, ...): part of resource names and of the Entra app name.')
@minLength(2)
@maxLength(10)
param environmentName string = 'prod'

@description('Tags put on every Azure resource (Graph objects have none).')
param tags object = {
  application: 'psc-sans-couture'
  environment: environmentName
}

// ---------------------------------------------------------------------------------------------
// Function App sizing (Flex Consumption)
// ---------------------------------------------------------------------------------------------

@description('Instances kept warm for HTTP ("always ready"): 1 hides cold starts from the first PS of the morning; billed.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int = 1

// Deliberate: Python apps on Flex Consumption get 1 concurrent request per instance by default, so
// each simultaneous sign-in would need its own (cold) instance. The broker's requests mostly wait
// on I/O (Table Storage, Entra, PSC over HTTPS): 16 — the platform default for other languages at
// 2048 MB — lets one instance overlap them. Lower it if handlers turn CPU-bound. The handlers are
// synchronous: the Python worker runs them on its thread pool (PYTHON_THREADPOOL_THREAD_COUNT,
// default min(32, cores + 4)), so PYTHON_THREADPOOL_THREAD_COUNT is set to match (at most 32).
@description('Concurrent HTTP requests per instance before scaling out (Python default on Flex is 1).')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 16

@description('Memory per instance in MB (512, 2048 or 4096).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum number of instances (Flex Consumption accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Storage replication (Standard_ZRS survives the loss of one availability zone).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Days logs are kept in Log Analytics.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 90

@description('E-mail address the monitoring alerts are sent to (action group).')
param alertEmail string

@description('Refused sign-ins of one reason within 15 minutes above which an alert is sent.')
@minValue(1)
param alertRefusalThreshold int = 20

@description('Percentage of requests answered 5xx or temporarily_unavailable within 15 minutes above which an alert is sent.')
@minValue(1)
@maxValue(100)
param alertUnavailableRatePercent int = 5

@description('Days a deleted Key Vault or secret stays recoverable (purge protection is on).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 90

// ---------------------------------------------------------------------------------------------
// Public address
// ---------------------------------------------------------------------------------------------

@description('Custom domain (e.g. psc-broker.chu-exemple.fr) already bound to the app. Empty: the default host name.')
param customDomain string = ''

// ---------------------------------------------------------------------------------------------
// Entra ID
// ---------------------------------------------------------------------------------------------

@description('Display name of the Entra app registration.')
param entraAppDisplayName string = 'PSC sans couture (${environmentName})'

@description('Immutable unique name of the Entra app registration (redeployments update the app with this name).')
param entraAppUniqueName string = 'psc-sans-couture-${environmentName}'

// Fails closed: with assignment required and no group assigned yet, nobody can sign in. infra/deploy.sh
// assigns the professionals' groups (--group) only once the authentication context is bound to an
// enabled Conditional Access policy (infra/conditional-access.sh --check).
@description('Require users and groups to be assigned to the enterprise application before they can sign in (appRoleAssignmentRequired). Keep true: infra/deploy.sh --group assigns the professionals.')
param entraAssignmentRequired bool = true

@description('Tenant ids whose users may sign in, comma-separated (BROKER_ENTRA_ALLOWED_TENANTS).')
param entraAllowedTenants string = tenant().tenantId

// The acrs claim is the only proof of the sign-in's strength the broker can see: a policy that only
// targets the app is invisible to it. Entra puts c1 in the ID token when the Conditional Access policy
// bound to the authentication context c1 is satisfied, but ALSO when no policy applies to it (none bound,
// or only report-only ones): "ACRS requested | No policies configured with ACRS | Yes | Yes"
// (MicrosoftDocs/entra-docs, docs/identity-platform/developer-guide-conditional-access-authentication-context.md).
// infra/conditional-access.sh creates the context, binds the policy and, with --check, verifies that an
// enabled policy with the expected strength protects it.
@description('Entra authentication contexts (c1..c25) every Entra ID token must carry in its acrs claim, comma-separated (BROKER_ENTRA_REQUIRED_ACRS). The broker requests them (claims challenge). Entra includes c1 in the ID token when the Conditional Access policy bound to that authentication context is satisfied, but also when no enabled policy applies to it: infra/conditional-access.sh creates the context and the policy, --enable enforces it, --check verifies it; keep the context bound to an enabled policy. The value none (no context checked) is for the sandbox only: the broker refuses it in Azure. Empty is refused.')
@minLength(1)
param entraRequiredAcrs string = 'c1'

@description('Maximum age in seconds of the Entra authentication (auth_time); 14400 = 4 h.')
@minValue(60)
param entraMaxAuthAge int = 14400

// ---------------------------------------------------------------------------------------------
// Pro Santé Connect
// ---------------------------------------------------------------------------------------------

@description('PSC discovery URL (production by default; the BAS sandbox is auth.bas.psc.esante.gouv.fr).')
param pscDiscoveryUrl string = 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration'

@description('Client id the ANS registered for this broker at PSC.')
@minLength(1)
param pscClientId string

@description('PSC client secret, written to Key Vault. Empty: keep the secret already in the vault.')
@secure()
param pscClientSecret string = ''

@description('Name of the Key Vault secret holding the PSC client secret.')
param pscClientSecretName string = 'psc-client-secret'

// ANS registers the broker either with a client secret or with private_key_jwt: then the broker signs
// its client assertions with its own signing key (Key Vault secret signingKeySecretName) and ANS
// fetches the public key from ${issuer}/jwks; no PSC secret is used.
@description('How the broker authenticates to PSC, as ANS registered it (BROKER_PSC_TOKEN_AUTH_METHOD): client_secret_basic (the secret pscClientSecret) or private_key_jwt (the signing key; JWKS URL ${issuer}/jwks).')
@allowed([
  'client_secret_basic'
  'private_key_jwt'
])
param pscTokenAuthMethod string = 'client_secret_basic'

// ---------------------------------------------------------------------------------------------
// The broker as an OpenID provider
// ---------------------------------------------------------------------------------------------

@description('Registered digital services (RPs): JSON list of RFC 7591 client metadata; client_secret as "sha256:<hex>".')
@minLength(2)
param clients string

@description('Key Vault secret whose versions are the ID-token signing keys (private RSA JWKs).')
param signingKeySecretName string = 'broker-signing-key'

@description('Show the choice page (Entra ID or Pro Santé Connect) before every sign-in.')
param showMire bool = false

@description('Broker session lifetime in seconds (PSC: 4 h).')
@minValue(60)
param sessionMaxAge int = 14400

@description('Broker session idle timeout in seconds (PSC: 30 min).')
@minValue(60)
param sessionIdleTimeout int = 1800

@description('Access token lifetime in seconds.')
@minValue(30)
param accessTokenTtl int = 120

@description('Refresh token lifetime in seconds (PSC: 30 min), for services registered with the refresh_token grant.')
@minValue(60)
param refreshTokenTtl int = 1800

@description('Days after which a pairing must be proven again with CPS / e-CPS through PSC before it signs anyone in (the page « Vérification périodique »). ANS publishes no pairing lifetime we could read: a yearly proof by default.')
@minValue(1)
param pairingReverifyDays int = 365
@description('Let the monthly timer rotate the signing key. Off by default: the app identity would then need Key Vault Secrets Officer on the signing-key secret, granted by hand (docs/deploy.md §6).')
param keyRotationEnabled bool = false

@description('Sign-ins one client address may start per minute, per instance: beyond, a French 429 page. Bounds the journey rows an unauthenticated source can make the broker write.')
@minValue(1)
param limitJourneysPerMinute int = 30

@description('Failed client authentications one client address may make per minute at /token, per instance: beyond, 429 slow_down.')
@minValue(1)
param limitFailedClientAuthPerMinute int = 10

@description('Back-channel logout: seconds before the first retry of a logout token a service did not accept, doubled at each attempt.')
@minValue(1)
param backchannelRetrySeconds int = 30

@description('Back-channel logout: attempts before a logout token goes to the poison queue (audited backchannel_logout_dead_lettered, alerted). Keep it equal to host.json extensions.queues.maxDequeueCount.')
@minValue(1)
param backchannelMaxAttempts int = 5

@description('Back-channel logout: seconds the broker waits for a service\'s answer to one logout token.')
@minValue(1)
param backchannelTimeout int = 5

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var suffix = uniqueString(subscription().id, resourceGroup().id, environmentName)
var compactBase = toLower(replace(baseName, '-', ''))
var names = {
  identity: 'id-${baseName}-${environmentName}'
  storage: 'st${take(compactBase, 9)}${take(suffix, 13)}'
  keyVault: 'kv${take(compactBase, 9)}${take(suffix, 13)}'
  workspace: 'log-${baseName}-${environmentName}'
  appInsights: 'appi-${baseName}-${environmentName}'
  plan: 'asp-${baseName}-${environmentName}'
  functionApp: 'func-${baseName}-${environmentName}-${take(suffix, 6)}'
}
var deploymentContainerName = 'app-package'

// The tables of docs/design.md "State" (sanscouture/adapters/tables.py TABLE_NAMES).
var tableNames = [
  'codes'
  'bindings'
  'audit'
  'jti'
  'par'
]

// The back-channel logout queue and the poison queue the Functions host and the broker use for it
// (sanscouture/backchannel.py QUEUE, POISON_QUEUE).
var queueNames = [
  'backchannel-logout'
  'backchannel-logout-poison'
]

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

// Module deployments are deployment records of the resource group too: their names carry the
// environment, like infra/deploy.sh's top-level one (psc-sans-couture-<environmentName>), so that two
// environments deployed into one resource group never overwrite each other's records.

module identity 'modules/identity.bicep' = {
  name: 'identity-${environmentName}'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage-${environmentName}'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    tableNames: tableNames
    queueNames: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault-${environmentName}'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    pscClientSecretName: pscClientSecretName
    pscClientSecret: pscClientSecret
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring-${environmentName}'
  params: {
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts-${environmentName}'
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    namePrefix: '${baseName}-${environmentName}'
    location: location
    tags: tags
    alertEmail: alertEmail
    refusalThreshold: alertRefusalThreshold
    unavailableRatePercent: alertUnavailableRatePercent
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac-${environmentName}'
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp-${environmentName}'
  params: {
    planName: names.plan
    name: names.functionApp
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    alwaysReadyInstances: alwaysReadyInstances
    perInstanceConcurrency: perInstanceConcurrency
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
  }
  dependsOn: [
    rbac // the host reads its storage with the identity as soon as it starts
  ]
}

var publicHost = empty(customDomain) ? functionApp.outputs.defaultHostName : customDomain
var issuer = 'https://${publicHost}'

module entraApp 'modules/entra-app.bicep' = {
  name: 'entra-app-${environmentName}'
  params: {
    displayName: entraAppDisplayName
    uniqueName: entraAppUniqueName
    publicHost: publicHost
    managedIdentityPrincipalId: identity.outputs.principalId
    assignmentRequired: entraAssignmentRequired
  }
}

module appSettings 'modules/appsettings.bicep' = {
  name: 'appsettings-${environmentName}'
  params: {
    functionAppName: functionApp.outputs.name
    threadPoolThreadCount: min(perInstanceConcurrency, 32)
    identityName: identity.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    issuer: issuer
    clients: clients
    entraClientId: entraApp.outputs.clientId
    entraAllowedTenants: entraAllowedTenants
    entraRequiredAcrs: entraRequiredAcrs
    entraMaxAuthAge: entraMaxAuthAge
    pscDiscoveryUrl: pscDiscoveryUrl
    pscClientId: pscClientId
    pscClientSecretName: pscClientSecretName
    pscTokenAuthMethod: pscTokenAuthMethod
    signingKeySecretName: signingKeySecretName
    showMire: showMire
    sessionMaxAge: sessionMaxAge
    sessionIdleTimeout: sessionIdleTimeout
    accessTokenTtl: accessTokenTtl
    refreshTokenTtl: refreshTokenTtl
    pairingReverifyDays: pairingReverifyDays
    keyRotationEnabled: keyRotationEnabled
    limitJourneysPerMinute: limitJourneysPerMinute
    limitFailedClientAuthPerMinute: limitFailedClientAuthPerMinute
    backchannelRetrySeconds: backchannelRetrySeconds
    backchannelMaxAttempts: backchannelMaxAttempts
    backchannelTimeout: backchannelTimeout
  }
  dependsOn: [
    rbac // Key Vault references resolve with the identity's Secrets User role
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (no secrets: names, URLs and ids only)
// ---------------------------------------------------------------------------------------------

@description('Issuer of the broker (its public base URL): what the digital services configure.')
output issuer string = issuer

@description('Redirect URI to register with Pro Santé Connect (ANS) for the pairing step.')
output pscRedirectUri string = '${issuer}/pair/callback'

@description('Application (client) id of the Entra app registration; Conditional Access targets it.')
output entraClientId string = entraApp.outputs.clientId

@description('Object id of the enterprise application (service principal): infra/deploy.sh assigns the groups to it.')
output entraServicePrincipalId string = entraApp.outputs.servicePrincipalId

@description('Name of the Function App (deploy.sh publishes the code to it).')
output functionAppName string = functionApp.outputs.name

@description('Name of the Key Vault (deploy.sh writes the first signing key to it).')
output keyVaultName string = keyVault.outputs.name

@description('Resource id of the Key Vault: the scope of deploy.sh\'s temporary Key Vault Secrets Officer assignment.')
output keyVaultId string = keyVault.outputs.id

// Output names avoid "secret" and "password": the outputs-should-not-contain-secrets linter rule
// treats such names as secrets (these two are only names of Key Vault secrets).
@description('Name of the Key Vault secret whose versions are the signing keys.')
output signingKeyName string = signingKeySecretName

@description('Name of the Key Vault secret holding the PSC client secret.')
output pscCredentialName string = pscClientSecretName
