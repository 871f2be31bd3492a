// Log Analytics workspace + workspace-based Application Insights. Local (instrumentation-key)
// authentication is disabled: the app ingests with its managed identity (Monitoring Metrics
// Publisher, APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Azure region of both resources.')
param location string

@description('Tags applied to both resources.')
param tags object

@description('Days logs are kept in the workspace (30-730).')
@minValue(30)
@maxValue(730)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true // Entra ID ingestion only
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

@description('Name of the Application Insights component (the app settings module reads its connection string).')
output appInsightsName string = appInsights.name

@description('Resource id of the Application Insights component.')
output appInsightsId string = appInsights.id

@description('Resource id of the Log Analytics workspace.')
output workspaceId string = workspace.id
