#!/usr/bin/env bash
# Conditional Access for the broker's Entra app (docs/deploy.md, "Accès conditionnel"), through
# Microsoft Graph with az rest:
#   - the authentication strength FA01-ProSantéConnect (phishing-resistant: Windows Hello for
#     Business, FIDO2 security key, certificate-based authentication multifactor), created if
#     missing, reused if the hospital already has it (the ANS guide uses the same name);
#   - a Conditional Access policy on the broker app only: grant = that strength, session = sign-in
#     frequency 4 hours. Created in report-only mode; --enable switches it on. Running it again
#     updates the policy in place (found by display name), and without --enable puts it back in
#     report-only mode.
# Requires Entra ID P1 and the Conditional Access Administrator (or Security Administrator) role.
# --dry-run prints the Graph requests without calling anything.
set -euo pipefail

readonly GRAPH="https://graph.microsoft.com/v1.0"

APP_ID=""
RESOURCE_GROUP=""
DEPLOYMENT_NAME="psc-sans-couture"
ENABLE=0
DRY_RUN=0
POLICY_NAME="AC02-PSCSansCouture-Session4hAvecMFA-Global-ToutePlateforme"
STRENGTH_NAME="FA01-ProSantéConnect"
SIGN_IN_FREQUENCY_HOURS=4
INCLUDE_GROUPS=()
EXCLUDE_GROUPS=()

usage() {
    cat <<EOF
Usage : infra/conditional-access.sh (--app-id <client id> | --resource-group <nom>) [options]

Crée ou met à jour la stratégie d'accès conditionnel du broker PSC sans couture : force
d'authentification « $STRENGTH_NAME » (Windows Hello Entreprise, clé FIDO2, authentification par
certificat multifacteur) et fréquence de connexion de $SIGN_IN_FREQUENCY_HOURS heures, sur la seule application du broker.
Par défaut la stratégie est en mode « rapport seulement » ; --enable l'active.

Options :
  -a, --app-id <client id>       Client id de l'application Entra du broker (sortie entraClientId).
  -g, --resource-group <nom>     À défaut de --app-id : lit entraClientId dans le déploiement du groupe.
  -n, --name <nom>               Nom du déploiement ARM à lire avec --resource-group
                                 (défaut : $DEPLOYMENT_NAME).
      --enable                   Active la stratégie (sinon : rapport seulement, y compris si elle était
                                 active).
      --policy-name <nom>        Nom de la stratégie (défaut : $POLICY_NAME).
      --strength-name <nom>      Nom de la force d'authentification (défaut : $STRENGTH_NAME).
      --sign-in-frequency <h>    Fréquence de connexion en heures (défaut : $SIGN_IN_FREQUENCY_HOURS).
      --include-group <id>       Limite la stratégie à ce groupe (répétable ; défaut : tous les
                                 utilisateurs). Utile pour un pilote.
      --exclude-group <id>       Exclut ce groupe (répétable) : comptes d'urgence (« break glass »).
      --dry-run                  Affiche les requêtes Graph sans rien appeler ni modifier.
  -h, --help                     Affiche cette aide.

Rôle requis : Administrateur de l'accès conditionnel (Conditional Access Administrator) ou
Administrateur de la sécurité. Licence : Entra ID P1.
EOF
}

say() { printf '%s\n' "$*" >&2; }
die() {
    printf 'Erreur : %s\n' "$*" >&2
    exit 1
}

need_value() {
    if [[ "$2" -lt 2 ]]; then
        die "l'option $1 attend une valeur (voir --help)."
    fi
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -a|--app-id)
                need_value "$1" "$#"; APP_ID="$2"; shift 2 ;;
            -g|--resource-group)
                need_value "$1" "$#"; RESOURCE_GROUP="$2"; shift 2 ;;
            -n|--name)
                need_value "$1" "$#"; DEPLOYMENT_NAME="$2"; shift 2 ;;
            --enable)
                ENABLE=1; shift ;;
            --policy-name)
                need_value "$1" "$#"; POLICY_NAME="$2"; shift 2 ;;
            --strength-name)
                need_value "$1" "$#"; STRENGTH_NAME="$2"; shift 2 ;;
            --sign-in-frequency)
                need_value "$1" "$#"; SIGN_IN_FREQUENCY_HOURS="$2"; shift 2 ;;
            --include-group)
                need_value "$1" "$#"; INCLUDE_GROUPS+=("$2"); shift 2 ;;
            --exclude-group)
                need_value "$1" "$#"; EXCLUDE_GROUPS+=("$2"); shift 2 ;;
            --dry-run)
                DRY_RUN=1; shift ;;
            -h|--help)
                usage; exit 0 ;;
            *)
                die "option inconnue : $1 (voir --help)." ;;
        esac
    done
}

is_guid() {
    [[ "$1" =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]]
}

is_plain_name() {
    # Names are put in JSON and JMESPath literals: no quotes, backslashes or control characters.
    [[ -n "$1" && "$1" != *[\"\'\\]* && "$1" != *[[:cntrl:]]* ]]
}

json_array() {
    # JSON array of strings (values already checked: GUIDs or plain names).
    local out="" item
    for item in "$@"; do
        out+="${out:+,}\"$item\""
    done
    printf '[%s]' "$out"
}

validate() {
    [[ -n "$APP_ID" || -n "$RESOURCE_GROUP" || "$DRY_RUN" -eq 1 ]] \
        || die "--app-id ou --resource-group est obligatoire (voir --help)."
    [[ -z "$APP_ID" ]] || is_guid "$APP_ID" || die "--app-id attend un client id (GUID) : $APP_ID"
    is_plain_name "$POLICY_NAME" || die "--policy-name : nom vide ou avec guillemets/antislash."
    is_plain_name "$STRENGTH_NAME" || die "--strength-name : nom vide ou avec guillemets/antislash."
    [[ "$SIGN_IN_FREQUENCY_HOURS" =~ ^[1-9][0-9]*$ ]] || die "--sign-in-frequency attend un nombre d'heures."
    local group
    # ${a[@]+"${a[@]}"}: empty arrays under set -u, also with the bash 3.2 of macOS.
    for group in ${INCLUDE_GROUPS[@]+"${INCLUDE_GROUPS[@]}"} ${EXCLUDE_GROUPS[@]+"${EXCLUDE_GROUPS[@]}"}; do
        is_guid "$group" || die "identifiant de groupe invalide (GUID attendu) : $group"
    done
}

# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------

strength_body() {
    printf '{"displayName":"%s","description":"%s","allowedCombinations":%s}\n' \
        "$STRENGTH_NAME" \
        "MFA résistante au hameçonnage pour Pro Santé Connect : Windows Hello Entreprise, FIDO2, certificat multifacteur" \
        "$(json_array windowsHelloForBusiness fido2 x509CertificateMultiFactor)"
}

policy_body() {
    local strength_id="$1" state users
    if [[ "$ENABLE" -eq 1 ]]; then state="enabled"; else state="enabledForReportingButNotEnforced"; fi
    if [[ ${#INCLUDE_GROUPS[@]} -gt 0 ]]; then
        users="\"includeGroups\":$(json_array "${INCLUDE_GROUPS[@]}")"
    else
        users="\"includeUsers\":[\"All\"]"
    fi
    users+=",\"excludeGroups\":$(json_array ${EXCLUDE_GROUPS[@]+"${EXCLUDE_GROUPS[@]}"})"
    printf '{"displayName":"%s","state":"%s",' "$POLICY_NAME" "$state"
    printf '"conditions":{"clientAppTypes":["all"],"applications":{"includeApplications":["%s"]},"users":{%s}},' \
        "${APP_ID:-<client id du broker>}" "$users"
    printf '"grantControls":{"operator":"OR","authenticationStrength":{"id":"%s"}},' "$strength_id"
    printf '"sessionControls":{"signInFrequency":{"isEnabled":true,"type":"hours","value":%s,' "$SIGN_IN_FREQUENCY_HOURS"
    printf '"authenticationType":"primaryAndSecondaryAuthentication","frequencyInterval":"timeBased"}}}\n'
}

print_manual_requests() {
    local strength_id="$1"
    cat <<EOF
# 1. Force d'authentification (si elle n'existe pas encore) :
POST $GRAPH/policies/authenticationStrengthPolicies
$(strength_body)

# 2. Stratégie d'accès conditionnel (POST pour la créer, PATCH .../policies/<id> pour la modifier) :
POST $GRAPH/identity/conditionalAccess/policies
$(policy_body "$strength_id")
EOF
}

# ---------------------------------------------------------------------------------------------
# Graph calls
# ---------------------------------------------------------------------------------------------

explain_graph_failure() {
    local log="$1"
    if grep -qE 'Authorization_RequestDenied|AccessDenied|accessDenied|Forbidden|403' "$log"; then
        say ""
        say "Microsoft Graph refuse la requête. Causes possibles :"
        say "  - le compte n'a pas le rôle Entra « Administrateur de l'accès conditionnel » (ou"
        say "    « Administrateur de la sécurité »), ou ce rôle n'est pas activé (PIM) ;"
        say "  - le jeton d'Azure CLI ne porte pas l'autorisation Policy.ReadWrite.ConditionalAccess"
        say "    (limitation connue d'Azure CLI, Azure/azure-cli#33062)."
        say "Dans ce cas, appliquez les mêmes requêtes avec Microsoft Graph PowerShell"
        say "(Connect-MgGraph -Scopes Policy.ReadWrite.ConditionalAccess,Policy.Read.All puis"
        say "Invoke-MgGraphRequest) ou dans le portail Entra ; elles sont affichées par --dry-run."
    fi
}

graph() {
    # graph <method> <url> [body] [extra az rest arguments...]
    local method="$1" url="$2" body="${3:-}" log status=0
    shift 3 || shift $#
    log=$(mktemp)
    if [[ -n "$body" ]]; then
        az rest --method "$method" --url "$url" --headers "Content-Type=application/json" \
            --body "$body" "$@" 2>"$log" || status=$?
    else
        az rest --method "$method" --url "$url" "$@" 2>"$log" || status=$?
    fi
    if [[ "$status" -ne 0 ]]; then
        cat "$log" >&2
        explain_graph_failure "$log"
    fi
    rm -f -- "$log"
    return "$status"
}

resolve_app_id() {
    [[ -z "$APP_ID" ]] || return 0
    APP_ID=$(az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        --query properties.outputs.entraClientId.value -o tsv 2>/dev/null) \
        || die "déploiement $DEPLOYMENT_NAME introuvable dans $RESOURCE_GROUP : passez --app-id."
    is_guid "$APP_ID" || die "sortie entraClientId illisible dans $DEPLOYMENT_NAME : passez --app-id."
}

ensure_strength() {
    local id
    id=$(graph GET "$GRAPH/policies/authenticationStrengthPolicies?\$filter=policyType%20eq%20'custom'" "" \
        --query "value[?displayName=='$STRENGTH_NAME'].id | [0]" -o tsv) \
        || die "lecture des forces d'authentification impossible."
    if [[ -n "$id" && "$id" != "None" ]]; then
        say "Force d'authentification « $STRENGTH_NAME » existante : $id (réutilisée telle quelle)."
    else
        id=$(graph POST "$GRAPH/policies/authenticationStrengthPolicies" "$(strength_body)" --query id -o tsv) \
            || die "création de la force d'authentification impossible."
        say "Force d'authentification « $STRENGTH_NAME » créée : $id"
    fi
    printf '%s' "$id"
}

upsert_policy() {
    local strength_id="$1" id
    id=$(graph GET "$GRAPH/identity/conditionalAccess/policies" "" \
        --query "value[?displayName=='$POLICY_NAME'].id | [0]" -o tsv) \
        || die "lecture des stratégies d'accès conditionnel impossible."
    if [[ -n "$id" && "$id" != "None" ]]; then
        graph PATCH "$GRAPH/identity/conditionalAccess/policies/$id" "$(policy_body "$strength_id")" >/dev/null \
            || die "mise à jour de la stratégie impossible."
        say "Stratégie « $POLICY_NAME » mise à jour : $id"
    else
        id=$(graph POST "$GRAPH/identity/conditionalAccess/policies" "$(policy_body "$strength_id")" \
            --query id -o tsv) || die "création de la stratégie impossible."
        say "Stratégie « $POLICY_NAME » créée : $id"
    fi
}

main() {
    parse_args "$@"
    validate

    if [[ "$DRY_RUN" -eq 1 ]]; then
        print_manual_requests "<id de la force $STRENGTH_NAME>"
        return
    fi

    command -v az >/dev/null 2>&1 || die "Azure CLI (az) introuvable."
    az account show >/dev/null 2>&1 || die "aucune session Azure CLI : lancez d'abord az login."
    resolve_app_id

    local strength_id
    strength_id=$(ensure_strength)
    upsert_policy "$strength_id"

    if [[ "$ENABLE" -eq 1 ]]; then
        say "La stratégie est ACTIVE pour l'application $APP_ID."
    else
        cat >&2 <<EOF
La stratégie est en mode « rapport seulement » pour l'application $APP_ID : elle n'interdit rien
encore. Vérifiez dans Entra ID > Journaux de connexion (onglet « Accès conditionnel en mode rapport
seulement ») que les professionnels satisfont « $STRENGTH_NAME », puis activez-la :
    infra/conditional-access.sh --app-id $APP_ID --enable
EOF
    fi
}

main "$@"
