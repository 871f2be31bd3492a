// The broker's single identity: a user-assigned managed identity (UAMI) used by the Function App for
// everything — host and deployment storage, Table Storage, Key Vault, Application Insights ingestion
// (Entra-authenticated) and, through a federated identity credential, as the Entra app's credential.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region of the identity.')
param location string

@description('Tags applied to the identity.')
param tags object

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Resource id, for the Function App identity block and the deployment storage authentication.')
output id string = uami.id

@description('Name of the identity.')
output name string = uami.name

@description('Object (principal) id: the subject of role assignments and of the federated identity credential.')
output principalId string = uami.properties.principalId

@description('Client (application) id: what azure-identity and MSAL use to ask for its tokens.')
output clientId string = uami.properties.clientId
