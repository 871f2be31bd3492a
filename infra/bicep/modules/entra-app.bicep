// The broker's Entra ID app registration, through the Microsoft Graph Bicep extension
// (bicepconfig.json, Bicep >= 0.36.1). Created with the deploying administrator's own token.
//   - web redirect URI https://<public host>/callback (where Entra returns the PS);
//   - delegated Microsoft Graph scopes openid and profile, exactly what the broker asks for (an ID
//     token with oid, tid and name; no offline_access, no Graph API permission: sanscouture/adapters/
//     entra.py), declared (requiredResourceAccess) AND granted tenant-wide (oauth2PermissionGrants,
//     AllPrincipals): declaring alone grants nothing;
//   - optional ID-token claims auth_time and acrs, read from ../entra-optional-claims.json (the
//     sandbox's Entra simulator reads the same file). Without auth_time, Entra's ID tokens have none
//     and the broker refuses every sign-in (fail closed). Without acrs, sign-ins still work: Entra
//     issues the contexts the broker requests explicitly without the opt-in, which only adds the
//     contexts Conditional Access finds already satisfied (opportunistic evaluation);
//   - the enterprise application requires assignment (appRoleAssignmentRequired) unless told
//     otherwise: the deployment fails closed, nobody signs in until infra/deploy.sh assigns the
//     professionals' groups (docs/deploy.md);
//   - no client secret: a federated identity credential makes the Function App's user-assigned
//     managed identity the app's credential (MSAL client assertion from a managed-identity token).
// Graph resources have no Azure location or tags.

extension microsoftGraphV1

@description('Display name shown in Entra ID (Enterprise applications, sign-in logs, consent).')
param displayName string

@description('Immutable unique name of the app registration: the key that makes redeployments update it.')
param uniqueName string

@description('Public host name of the broker (default host name or custom domain), without scheme.')
param publicHost string

@description('Object (principal) id of the user-assigned managed identity trusted as the app credential.')
param managedIdentityPrincipalId string

// Graph servicePrincipal.appRoleAssignmentRequired: "whether users or other service principals need to
// be granted an app role assignment for this service principal before users can sign in" (default
// false in Graph; microsoftgraph/msgraph-bicep-types, generated/microsoftgraph/microsoft.graph/v1.0/types.md).
@description('Only users and groups assigned to the enterprise application may sign in through the broker.')
param assignmentRequired bool

var graphAppId = '00000003-0000-0000-c000-000000000000' // Microsoft Graph
var delegatedScopes = [
  'openid'
  'profile'
]

resource graphSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: graphAppId
}

var graphScopeAccess = map(
  filter(graphSp.oauth2PermissionScopes, permission => contains(delegatedScopes, permission.value)),
  permission => {
    id: permission.id
    type: 'Scope'
  }
)

resource brokerApp 'Microsoft.Graph/applications@v1.0' = {
  displayName: displayName
  uniqueName: uniqueName
  signInAudience: 'AzureADMyOrg'
  notes: 'Broker Pro Santé Connect sans couture. Deployed by infra/bicep; credential = federated managed identity.'
  web: {
    redirectUris: [
      'https://${publicHost}/callback'
    ]
    implicitGrantSettings: {
      enableIdTokenIssuance: false
      enableAccessTokenIssuance: false
    }
  }
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: graphScopeAccess
    }
  ]
  // The optionalClaims object of a Graph application, shared with the sandbox (see the header).
  optionalClaims: loadJsonContent('../entra-optional-claims.json')

  // Graph extension known issue: a child's name is '<parent uniqueName>/<child name>'.
  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${uniqueName}/function-app-managed-identity'
    description: 'The broker Function App user-assigned managed identity is this app credential (no secret).'
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: managedIdentityPrincipalId
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource brokerSp 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: brokerApp.appId
  appRoleAssignmentRequired: assignmentRequired
  notes: 'Broker Pro Santé Connect sans couture: target of the Conditional Access policy (infra/conditional-access.sh).'
}

// Tenant-wide admin consent for the delegated scopes above (Application Administrator or
// Cloud Application Administrator can grant it for Microsoft Graph delegated permissions).
resource adminConsent 'Microsoft.Graph/oauth2PermissionGrants@v1.0' = {
  clientId: brokerSp.id
  resourceId: graphSp.id
  consentType: 'AllPrincipals'
  scope: join(delegatedScopes, ' ')
}

@description('Application (client) id of the broker app registration (BROKER_ENTRA_CLIENT_ID).')
output clientId string = brokerApp.appId

@description('Object id of the app registration.')
output applicationObjectId string = brokerApp.id

@description('Object id of the service principal (enterprise application), the Conditional Access target.')
output servicePrincipalId string = brokerSp.id
