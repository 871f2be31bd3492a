// The Function App's app settings, in one whole-collection write (Microsoft.Web/sites/config
// 'appsettings' replaces every setting: list them all here). The BROKER_* names are exactly those
// of sanscouture/settings.py minus its sandbox-only ones (tests/infra/test_bicep.py checks it);
// the others are the platform's. No secret is written in clear: the PSC client secret is a Key
// Vault reference resolved with the managed identity (keyVaultReferenceIdentity on the site), and only
// with client_secret_basic (private_key_jwt signs with the signing key; the broker refuses a secret then).
// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT*, ...: none of them is set.

@description('Name of the Function App.')
param functionAppName string

@description('Threads of the Python worker for the synchronous handlers: matches the per-instance HTTP concurrency.')
@minValue(1)
@maxValue(32)
param threadPoolThreadCount int

@description('Name of the user-assigned managed identity the app runs as.')
param identityName string

@description('Name of the storage account (host storage and state tables).')
param storageAccountName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Public base URL of the broker, without trailing slash (BROKER_ISSUER).')
param issuer string

@description('JSON list of RP client metadata (BROKER_CLIENTS).')
param clients string

@description('Application (client) id of the broker Entra app registration (BROKER_ENTRA_CLIENT_ID).')
param entraClientId string

@description('Tenant ids allowed to sign in, comma-separated (BROKER_ENTRA_ALLOWED_TENANTS).')
param entraAllowedTenants string

@description('Entra authentication context values (acrs) every sign-in must carry (BROKER_ENTRA_REQUIRED_ACRS).')
param entraRequiredAcrs string

@description('Maximum age in seconds of the Entra authentication (BROKER_ENTRA_MAX_AUTH_AGE).')
param entraMaxAuthAge int

@description('PSC discovery document URL (BROKER_PSC_DISCOVERY_URL).')
param pscDiscoveryUrl string

@description('PSC client id (BROKER_PSC_CLIENT_ID).')
param pscClientId string

@description('Name of the Key Vault secret holding the PSC client secret.')
param pscClientSecretName string

@description('How the broker authenticates to PSC (BROKER_PSC_TOKEN_AUTH_METHOD): client_secret_basic or private_key_jwt.')
@allowed([
  'client_secret_basic'
  'private_key_jwt'
])
param pscTokenAuthMethod string

@description('Name of the Key Vault secret whose versions are the signing keys (BROKER_SIGNING_KEY_NAME).')
param signingKeySecretName string

@description('Show the choice page (Entra ID / Pro Santé Connect) before every sign-in (BROKER_SHOW_MIRE).')
param showMire bool

@description('Broker session lifetime in seconds (BROKER_SESSION_MAX_AGE).')
param sessionMaxAge int

@description('Broker session idle timeout in seconds (BROKER_SESSION_IDLE_TIMEOUT).')
param sessionIdleTimeout int

@description('Access token lifetime in seconds (BROKER_ACCESS_TOKEN_TTL).')
param accessTokenTtl int

@description('Refresh token lifetime in seconds (BROKER_REFRESH_TOKEN_TTL).')
param refreshTokenTtl int

@description('Days after which a pairing must be proven again through PSC (BROKER_PAIRING_REVERIFY_DAYS).')
param pairingReverifyDays int
@description('Let the monthly timer rotate the signing key (BROKER_KEY_ROTATION_ENABLED); needs the secret-scoped role of docs/deploy.md §6.')
param keyRotationEnabled bool

@description('Sign-ins a client address may start per minute, per instance (BROKER_LIMIT_JOURNEYS_PER_MINUTE).')
param limitJourneysPerMinute int

@description('Failed client authentications per client address and minute at /token (BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE).')
param limitFailedClientAuthPerMinute int

@description('Seconds before the first retry of a back-channel logout token (BROKER_BACKCHANNEL_RETRY_SECONDS).')
param backchannelRetrySeconds int

@description('Attempts before a back-channel logout token is dead-lettered (BROKER_BACKCHANNEL_MAX_ATTEMPTS).')
param backchannelMaxAttempts int

@description('Seconds to wait for a service\'s answer to a logout token (BROKER_BACKCHANNEL_TIMEOUT).')
param backchannelTimeout int

resource site 'Microsoft.Web/sites@2023-12-01' existing = {
  name: functionAppName
}

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Functions host storage, through the managed identity (no connection string, no key).
    AzureWebJobsStorage__accountName: stg.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: uami.properties.clientId
    // Telemetry: Entra-authenticated ingestion (the component has local auth disabled); the
    // Python worker exports OpenTelemetry itself (host.json telemetryMode OpenTelemetry).
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${uami.properties.clientId};Authorization=AAD'
    PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
    // Without it the worker's pool (min(32, cores + 4)) would cap perInstanceConcurrency on small instances.
    PYTHON_THREADPOOL_THREAD_COUNT: string(threadPoolThreadCount)
    // azure-identity (DefaultAzureCredential / ManagedIdentityCredential) picks the UAMI.
    AZURE_CLIENT_ID: uami.properties.clientId
    // The broker (sanscouture/settings.py).
    BROKER_ISSUER: issuer
    BROKER_CLIENTS: string(json(clients)) // fails the deployment, not the first sign-in, on bad JSON
    BROKER_ENTRA_AUTHORITY: '${environment().authentication.loginEndpoint}${tenant().tenantId}'
    BROKER_ENTRA_CLIENT_ID: entraClientId
    BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID: uami.properties.clientId
    BROKER_ENTRA_ALLOWED_TENANTS: entraAllowedTenants
    BROKER_ENTRA_REQUIRED_ACRS: entraRequiredAcrs
    BROKER_ENTRA_MAX_AUTH_AGE: string(entraMaxAuthAge)
    BROKER_PSC_DISCOVERY_URL: pscDiscoveryUrl
    BROKER_PSC_CLIENT_ID: pscClientId
    BROKER_PSC_CLIENT_SECRET: (pscTokenAuthMethod == 'client_secret_basic') ? '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${pscClientSecretName}/)' : ''
    BROKER_PSC_TOKEN_AUTH_METHOD: pscTokenAuthMethod
    BROKER_TABLES_ENDPOINT: stg.properties.primaryEndpoints.table
    BROKER_KEYVAULT_URL: vault.properties.vaultUri
    BROKER_SIGNING_KEY_NAME: signingKeySecretName
    BROKER_SHOW_MIRE: showMire ? 'true' : 'false'
    BROKER_SESSION_MAX_AGE: string(sessionMaxAge)
    BROKER_SESSION_IDLE_TIMEOUT: string(sessionIdleTimeout)
    BROKER_ACCESS_TOKEN_TTL: string(accessTokenTtl)
    BROKER_REFRESH_TOKEN_TTL: string(refreshTokenTtl)
    BROKER_PAIRING_REVERIFY_DAYS: string(pairingReverifyDays)
    BROKER_KEY_ROTATION_ENABLED: keyRotationEnabled ? 'true' : 'false'
    BROKER_LIMIT_JOURNEYS_PER_MINUTE: string(limitJourneysPerMinute)
    BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE: string(limitFailedClientAuthPerMinute)
    // Back-channel logout: the queue trigger's identity-based connection BROKER_QUEUES (read by the
    // host: __queueServiceUri, __credential, __clientId; by the broker: __queueServiceUri).
    BROKER_QUEUES__queueServiceUri: stg.properties.primaryEndpoints.queue
    BROKER_QUEUES__credential: 'managedidentity'
    BROKER_QUEUES__clientId: uami.properties.clientId
    BROKER_BACKCHANNEL_RETRY_SECONDS: string(backchannelRetrySeconds)
    BROKER_BACKCHANNEL_MAX_ATTEMPTS: string(backchannelMaxAttempts)
    BROKER_BACKCHANNEL_TIMEOUT: string(backchannelTimeout)
  }
}
