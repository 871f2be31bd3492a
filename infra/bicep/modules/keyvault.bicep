// Key Vault (RBAC authorization, soft delete, purge protection). Holds two secrets:
//   - the PSC client secret, written here from a secure parameter when one is given, read by the app
//     through a Key Vault reference in its app settings;
//   - the ID-token signing key (one private RSA JWK per secret version), created and rotated by
//     infra/deploy.sh with infra/signing_key.py — never by this template, so that no private key
//     ever passes through a deployment's parameters or history.

@description('Name of the vault (3-24 letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the vault.')
param location string

@description('Tags applied to the vault and its secrets.')
param tags object

@description('Days a deleted vault or secret stays recoverable (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Name of the secret that holds the PSC client secret.')
param pscClientSecretName string

@description('PSC client secret. Empty: leave the existing secret untouched (later deployments).')
@secure()
param pscClientSecret string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // roles, not access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource pscSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(pscClientSecret)) {
  parent: vault
  name: pscClientSecretName
  tags: tags
  properties: {
    value: pscClientSecret
    contentType: 'text/plain; PSC client_secret'
    attributes: {
      enabled: true
    }
  }
}

@description('Name of the vault.')
output name string = vault.name

@description('Resource id of the vault.')
output id string = vault.id

@description('Vault URI, ending with a slash (BROKER_KEYVAULT_URL).')
output vaultUri string = vault.properties.vaultUri

