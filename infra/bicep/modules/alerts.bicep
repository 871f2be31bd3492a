// Alerts and a workbook on the broker's Application Insights telemetry (docs/deploy.md §5 quater).
// Each query is a file of infra/monitoring/, read here with loadTextContent and quoted in docs/deploy.md:
// tests/infra/test_monitoring.py checks the queries against telemetry captured in the sandbox.

@description('Resource id of the Application Insights component the queries read.')
param appInsightsId string

@description('Prefix of the alert rules and action group names.')
param namePrefix string

@description('Azure region of the alert rules and the workbook.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('E-mail address the alerts are sent to (the operations team).')
param alertEmail string

@description('Refused sign-ins of one reason within 15 minutes above which the refusals alert fires.')
@minValue(1)
param refusalThreshold int

@description('Percentage of requests answered 5xx or temporarily_unavailable within 15 minutes above which the availability alert fires.')
@minValue(1)
@maxValue(100)
param unavailableRatePercent int

var queries = {
  refusals: loadTextContent('../../monitoring/alert-refusals.kql')
  unavailable: loadTextContent('../../monitoring/alert-unavailable.kql')
  deadLetters: loadTextContent('../../monitoring/alert-dead-letters.kql')
  adminRemovals: loadTextContent('../../monitoring/alert-admin-removals.kql')
  signInsPerHour: loadTextContent('../../monitoring/workbook-sign-ins-per-hour.kql')
  refusalsByReason: loadTextContent('../../monitoring/workbook-refusals-by-reason.kql')
  latencyPerStep: loadTextContent('../../monitoring/workbook-latency-per-step.kql')
  pairings: loadTextContent('../../monitoring/workbook-pairings.kql')
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ag'
  location: 'global' // action groups are global resources
  tags: tags
  properties: {
    groupShortName: 'psc-broker'
    enabled: true
    emailReceivers: [
      {
        name: 'exploitation'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource refusalsAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-refusals'
  location: location
  tags: tags
  properties: {
    displayName: 'PSC sans couture : refus de connexion en hausse'
    description: 'Refused sign-ins of one reason above the threshold within 15 minutes (docs/deploy.md §5 quater).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: queries.refusals
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: refusalThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource unavailableAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-unavailable'
  location: location
  tags: tags
  properties: {
    displayName: 'PSC sans couture : service indisponible (5xx, temporarily_unavailable)'
    description: 'Share of requests answered 5xx or temporarily_unavailable above the threshold within 15 minutes.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: queries.unavailable
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'rate'
          operator: 'GreaterThan'
          threshold: unavailableRatePercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource deadLettersAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-backchannel-dead-letters'
  location: location
  tags: tags
  properties: {
    displayName: 'PSC sans couture : déconnexion non transmise à un service'
    description: 'A back-channel logout notice was dead-lettered after its last attempt.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: queries.deadLetters
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'client_id'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource adminRemovalsAlert 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: '${namePrefix}-pairing-removed-by-admin'
  location: location
  tags: tags
  properties: {
    displayName: 'PSC sans couture : appairage révoqué par un administrateur'
    description: 'A pairing was removed by an administrator (tools.pairings remove).'
    severity: 3
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: queries.adminRemovals
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// A workbook of Notebook/1.0 items, one per query (https://learn.microsoft.com/azure/azure-monitor/visualize/workbooks-automate).
var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      name: 'title'
      content: {
        json: '## PSC sans couture : connexions\nConnexions, refus, latence des étapes et appairages (docs/deploy.md §5 quater).'
      }
    }
    {
      type: 3
      name: 'sign-ins-per-hour'
      content: {
        version: 'KqlItem/1.0'
        title: 'Connexions par heure'
        query: queries.signInsPerHour
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'refusals-by-reason'
      content: {
        version: 'KqlItem/1.0'
        title: 'Refus par motif'
        query: queries.refusalsByReason
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
        timeContext: {
          durationMs: 604800000
        }
      }
    }
    {
      type: 3
      name: 'latency-per-step'
      content: {
        version: 'KqlItem/1.0'
        title: 'Durée des étapes (médiane, 95e centile, ms)'
        query: queries.latencyPerStep
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
        timeContext: {
          durationMs: 86400000
        }
      }
    }
    {
      type: 3
      name: 'pairings'
      content: {
        version: 'KqlItem/1.0'
        title: 'Appairages créés et révoqués'
        query: queries.pairings
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
        timeContext: {
          durationMs: 2592000000
        }
      }
    }
  ]
  fallbackResourceIds: [
    appInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsightsId, 'psc-sans-couture-sign-ins')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'PSC sans couture : connexions'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string(workbookContent)
  }
}

@description('Resource id of the action group the alerts notify.')
output actionGroupId string = actionGroup.id

@description('Resource id of the sign-ins workbook.')
output workbookId string = workbook.id
