// Flex Consumption plan (FC1, Linux) and the Function App (Python 3.11). The runtime, scale and
// deployment storage live in functionAppConfig; the app settings are written by appsettings.bicep
// once the Entra app registration (which needs this app's host name) exists.

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the Function App (part of its default host name).')
param name string

@description('Azure region of the plan and the app.')
param location string

@description('Tags applied to the plan and the app.')
param tags object

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Blob container URL the app package is deployed to (read with the managed identity).')
param deploymentContainerUrl string

@description('Instances kept warm for the HTTP trigger group ("always ready", billed as a baseline).')
@minValue(0)
@maxValue(20)
param alwaysReadyInstances int

@description('Concurrent HTTP requests one instance handles before Flex Consumption adds another.')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Upper bound of instances the app scales out to (Flex Consumption: 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2023-12-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false // stateless workers: any instance serves any request
    keyVaultReferenceIdentity: identityId // Key Vault references resolve with the UAMI
    publicNetworkAccess: 'Enabled'
    // Flex Consumption rejects or ignores many site properties ("Flex Consumption plan deprecations",
    // https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations,
    // linked from MicrosoftDocs/azure-docs articles/azure-functions/flex-consumption-plan.md): among them
    // properties.ftpsState ("FTPS not supported"), alwaysOn, use32BitWorkerProcess, linuxFxVersion,
    // preWarmedInstanceCount, functionAppScaleLimit, containerSize, javaVersion/netFrameworkVersion/
    // powerShellVersion (runtime, scale and memory live in functionAppConfig). minTlsVersion is not on that
    // list; Microsoft's Flex samples set no other siteConfig property
    // (Azure-Samples/azure-functions-flex-consumption-samples IaC/bicep/core/host/function.bicep,
    // Azure-Samples/functions-quickstart-python-azd-otel infra/core/host/functions-flexconsumption.bicep).
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: [
          {
            name: 'http'
            instanceCount: alwaysReadyInstances
          }
        ]
        triggers: {
          http: {
            // Python apps on Flex Consumption default to ONE request per instance, so every
            // concurrent sign-in would wait for a new instance (cold start). The broker's handlers
            // wait on I/O (Table Storage, Entra, PSC), so an instance can overlap many of them.
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Basic (user name + password) publishing credentials off for the deployment endpoint (scm, which
// infra/deploy.sh's zip publish reaches with an Entra token): "basicPublishingCredentialsPolicies/scm"
// (MicrosoftDocs/azure-docs, articles/app-service/configure-basic-auth-disable.md). No 'ftp' policy:
// a Flex Consumption app has no FTP endpoint (FTPS is not supported, see the deprecations above), and
// the portal hides "FTP Basic Auth Publishing" for Flex apps while keeping the SCM one
// (Azure/azure-functions-ux#7660).
resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('Name of the Function App.')
output name string = site.name

@description('Resource id of the Function App.')
output id string = site.id

@description('Default host name (no scheme), e.g. <app>-<hash>.<region>-01.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName
