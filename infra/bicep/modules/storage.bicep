// Storage account: Functions host storage (AzureWebJobsStorage), the Flex Consumption deployment
// container, the broker's state tables (docs/design.md "State") and the back-channel logout queues
// (docs/design.md "Back-channel logout"). Identity only: no shared keys.

@description('Name of the storage account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region of the storage account.')
param location string

@description('Tags applied to the storage account.')
param tags object

@description('Replication. ZRS keeps the broker\'s state through the loss of one availability zone.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param skuName string

@description('Blob container that holds the zip package the Flex Consumption app runs from.')
param deploymentContainerName string

@description('Tables of the broker (one row = one thing; see docs/design.md "State").')
param tableNames array

@description('Queues of the broker: the back-channel logout outbox and its poison queue (sanscouture/backchannel.py).')
param queueNames array

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false // Entra ID (managed identity) only
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Children are declared with `parent:` rather than nested: pycep (the offline parser of
// tests/infra) keeps only the last nested child of an object.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: stg
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: stg
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: stg
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

@description('Name of the storage account.')
output name string = stg.name

@description('Resource id of the storage account.')
output id string = stg.id

@description('Blob container URL of the deployment package (Flex Consumption functionAppConfig.deployment).')
output deploymentContainerUrl string = '${stg.properties.primaryEndpoints.blob}${deploymentContainerName}'

@description('Table service endpoint (BROKER_TABLES_ENDPOINT).')
output tableEndpoint string = stg.properties.primaryEndpoints.table

@description('Queue service endpoint (BROKER_QUEUES__queueServiceUri).')
output queueEndpoint string = stg.properties.primaryEndpoints.queue
