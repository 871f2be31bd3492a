// Role assignments, least privilege, each scoped to the one resource it is about.
// App identity (user-assigned managed identity):
//   - Storage Blob Data Owner on the storage account: Functions host storage (AzureWebJobsStorage
//     needs Owner for its blob leases and keys) and the Flex deployment container;
//   - Storage Table Data Contributor on the storage account: the state tables;
//   - Storage Queue Data Contributor on the storage account: the back-channel logout queues (the
//     request path sends, the queue trigger receives and deletes, the delivery re-sends and
//     dead-letters);
//   - Key Vault Secrets User on the vault: read the signing key and the PSC client secret
//     (no Secrets Officer: by default the app never writes its own keys; an ES that turns the monthly
//     rotation timer on, keyRotationEnabled, grants it Secrets Officer on the signing-key secret only,
//     by hand, once that secret exists: docs/deploy.md, section 6);
//   - Monitoring Metrics Publisher on Application Insights: Entra-authenticated ingestion.
// No standing role for the deploying administrator: infra/deploy.sh gives itself Key Vault Secrets
// Officer on the vault only while it writes the first signing-key version (a new secret can only be
// created with a vault-scope role) and deletes that assignment before it exits; rotations use a
// temporary assignment scoped to the signing-key secret (docs/deploy.md, section 6; secret-scope
// assignments: MicrosoftDocs/azure-docs, articles/key-vault/general/rbac-guide.md).
// Assigning roles needs Owner, User Access Administrator or Role Based Access Control
// Administrator on the resource group.

@description('Object (principal) id of the app\'s user-assigned managed identity.')
param appPrincipalId string

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the Application Insights component.')
param appInsightsName string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
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

resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stg.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: stg
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'PSC sans couture broker: Functions host storage and deployment package'
  }
}

resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stg.id, appPrincipalId, roles.storageTableDataContributor)
  scope: stg
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'PSC sans couture broker: state tables'
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(stg.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: stg
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'PSC sans couture broker: back-channel logout queues'
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'PSC sans couture broker: read the signing key and the PSC client secret'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'PSC sans couture broker: Entra-authenticated telemetry ingestion'
  }
}
