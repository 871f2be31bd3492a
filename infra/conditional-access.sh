#!/usr/bin/env bash
# Conditional Access for the broker (docs/deploy.md, "Accès conditionnel"), through Microsoft
# Graph with az rest:
#   - the authentication strength FA01-ProSantéConnect (phishing-resistant: Windows Hello for
#     Business, FIDO2 security key, certificate-based authentication multifactor), created if
#     missing, reused if the hospital already has it (the ANS guide uses the same name);
#   - the authentication context c1 (--auth-context), created or updated. The broker requests it
#     (claims challenge, BROKER_ENTRA_REQUIRED_ACRS) and refuses an ID token whose acrs claim lacks
#     it: that claim is the only proof of the sign-in's strength the broker can see. Entra includes
#     c1 only when the policy bound to it is satisfied, but it also issues a requested context that
#     no policy is bound to: hence the second policy below, which must stay bound to it;
#   - two Conditional Access policies with the same grant (that strength) and session (sign-in
#     frequency 4 hours): "<name>-App" on the broker app, "<name>-Contexte" on the authentication
#     context (Graph does not allow both targets in one policy's applications condition). Created
#     in report-only mode; --enable switches both on. Running it again updates them in place (found
#     by display name), and without --enable puts them back in report-only mode.
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
readonly APP_SUFFIX="-App" CONTEXT_SUFFIX="-Contexte"
AUTH_CONTEXT="c1"
readonly AUTH_CONTEXT_NAME="PSC sans couture — authentification forte"
STRENGTH_NAME="FA01-ProSantéConnect"
SIGN_IN_FREQUENCY_HOURS=4
INCLUDE_GROUPS=()
EXCLUDE_GROUPS=()

usage() {
    cat <<EOF
Usage : infra/conditional-access.sh (--app-id <client id> | --resource-group <nom>) [options]

Crée ou met à jour l'accès conditionnel du broker PSC sans couture : force d'authentification
« $STRENGTH_NAME » (Windows Hello Entreprise, clé FIDO2, authentification par certificat
multifacteur) et fréquence de connexion de $SIGN_IN_FREQUENCY_HOURS heures, imposées par deux stratégies :
  - « <nom>$APP_SUFFIX » sur l'application du broker ;
  - « <nom>$CONTEXT_SUFFIX » sur le contexte d'authentification ($AUTH_CONTEXT par défaut), que le script
    crée ou met à jour. Le broker exige ce contexte dans la revendication acrs du jeton Entra
    (paramètre entraRequiredAcrs, BROKER_ENTRA_REQUIRED_ACRS) : Entra ne l'y met que si la
    stratégie liée au contexte est satisfaite — mais il l'y met aussi si AUCUNE stratégie n'y est
    liée : gardez le contexte lié à la stratégie.
Par défaut les stratégies sont en mode « rapport seulement » ; --enable les active.

Options :
  -a, --app-id <client id>       Client id de l'application Entra du broker (sortie entraClientId).
  -g, --resource-group <nom>     À défaut de --app-id : lit entraClientId dans le déploiement du groupe.
  -n, --name <nom>               Nom du déploiement ARM à lire avec --resource-group
                                 (défaut : $DEPLOYMENT_NAME).
      --auth-context <cN>        Contexte d'authentification (c1 à c25) créé ou mis à jour et ciblé par
                                 la stratégie « …$CONTEXT_SUFFIX » (défaut : $AUTH_CONTEXT). Doit être la valeur
                                 du paramètre Bicep entraRequiredAcrs. Le script refuse un contexte
                                 qui existe déjà sous un autre nom (il sert peut-être à autre chose).
      --enable                   Active les deux stratégies (sinon : rapport seulement, y compris si
                                 elles étaient actives).
      --policy-name <nom>        Préfixe du nom des stratégies, suivi de « $APP_SUFFIX » et de
                                 « $CONTEXT_SUFFIX » (défaut : $POLICY_NAME).
      --strength-name <nom>      Nom de la force d'authentification (défaut : $STRENGTH_NAME).
      --sign-in-frequency <h>    Fréquence de connexion en heures (défaut : $SIGN_IN_FREQUENCY_HOURS).
      --include-group <id>       Limite les stratégies à ce groupe (répétable ; défaut : tous les
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
            --auth-context)
                need_value "$1" "$#"; AUTH_CONTEXT="$2"; shift 2 ;;
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
    [[ "$AUTH_CONTEXT" =~ ^c([1-9]|1[0-9]|2[0-5])$ ]] \
        || die "--auth-context attend un identifiant de contexte d'authentification, c1 à c25 : $AUTH_CONTEXT"
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

auth_context_body() {
    printf '{"id":"%s","displayName":"%s","description":"%s","isAvailable":true}\n' \
        "$AUTH_CONTEXT" "$AUTH_CONTEXT_NAME" \
        "Exigé par le broker PSC sans couture (revendication acrs). Lié à la stratégie $POLICY_NAME$CONTEXT_SUFFIX : force $STRENGTH_NAME, fréquence de connexion $SIGN_IN_FREQUENCY_HOURS h. Ne pas délier."
}

policy_body() {
    # policy_body <strength id> app|context
    local strength_id="$1" target="$2" name applications state users
    case "$target" in
        app)
            name="$POLICY_NAME$APP_SUFFIX"
            applications="\"includeApplications\":$(json_array "${APP_ID:-<client id du broker>}")" ;;
        context)
            name="$POLICY_NAME$CONTEXT_SUFFIX"
            applications="\"includeAuthenticationContextClassReferences\":$(json_array "$AUTH_CONTEXT")" ;;
        *)
            die "cible de stratégie inconnue : $target" ;;
    esac
    if [[ "$ENABLE" -eq 1 ]]; then state="enabled"; else state="enabledForReportingButNotEnforced"; fi
    if [[ ${#INCLUDE_GROUPS[@]} -gt 0 ]]; then
        users="\"includeGroups\":$(json_array "${INCLUDE_GROUPS[@]}")"
    else
        users="\"includeUsers\":[\"All\"]"
    fi
    users+=",\"excludeGroups\":$(json_array ${EXCLUDE_GROUPS[@]+"${EXCLUDE_GROUPS[@]}"})"
    printf '{"displayName":"%s","state":"%s",' "$name" "$state"
    printf '"conditions":{"clientAppTypes":["all"],"applications":{%s},"users":{%s}},' "$applications" "$users"
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

# 2. Contexte d'authentification $AUTH_CONTEXT (PATCH le crée s'il n'existe pas, sinon le met à jour ;
#    le script vérifie d'abord qu'il n'existe pas déjà sous un autre nom) :
PATCH $GRAPH/identity/conditionalAccess/authenticationContextClassReferences/$AUTH_CONTEXT
$(auth_context_body)

# 3. Stratégie sur l'application du broker (POST pour la créer, PATCH .../policies/<id> pour la modifier) :
POST $GRAPH/identity/conditionalAccess/policies
$(policy_body "$strength_id" app)

# 4. Stratégie sur le contexte d'authentification $AUTH_CONTEXT (idem) :
POST $GRAPH/identity/conditionalAccess/policies
$(policy_body "$strength_id" context)
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

ensure_auth_context() {
    local name
    name=$(graph GET "$GRAPH/identity/conditionalAccess/authenticationContextClassReferences" "" \
        --query "value[?id=='$AUTH_CONTEXT'].displayName | [0]" -o tsv) \
        || die "lecture des contextes d'authentification impossible."
    [[ "$name" != "None" ]] || name=""
    if [[ -n "$name" && "$name" != "$AUTH_CONTEXT_NAME" ]]; then
        die "le contexte d'authentification $AUTH_CONTEXT existe déjà sous le nom « $name » et sert peut-être
à autre chose. Choisissez un contexte libre avec --auth-context <cN> (et déployez le broker avec
entraRequiredAcrs = '<cN>'), ou, s'il doit bien servir au broker, renommez-le « $AUTH_CONTEXT_NAME »
dans Entra ID > Accès conditionnel > Contextes d'authentification."
    fi
    graph PATCH "$GRAPH/identity/conditionalAccess/authenticationContextClassReferences/$AUTH_CONTEXT" \
        "$(auth_context_body)" >/dev/null \
        || die "création ou mise à jour du contexte d'authentification $AUTH_CONTEXT impossible."
    if [[ -n "$name" ]]; then
        say "Contexte d'authentification $AUTH_CONTEXT « $AUTH_CONTEXT_NAME » mis à jour."
    else
        say "Contexte d'authentification $AUTH_CONTEXT « $AUTH_CONTEXT_NAME » créé."
    fi
}

policy_id() {
    # Id of the policy with that display name, empty if none.
    local id
    id=$(graph GET "$GRAPH/identity/conditionalAccess/policies" "" \
        --query "value[?displayName=='$1'].id | [0]" -o tsv) \
        || die "lecture des stratégies d'accès conditionnel impossible."
    [[ "$id" == "None" ]] || printf '%s' "$id"
}

upsert_policy() {
    # upsert_policy <strength id> app|context <display name> [former display name]
    local strength_id="$1" target="$2" name="$3" former="${4:-}" id
    id=$(policy_id "$name")
    if [[ -z "$id" && -n "$former" ]]; then
        # Before the authentication context, this script named the app policy without a suffix:
        # rename that policy rather than leave a duplicate behind.
        id=$(policy_id "$former")
        [[ -z "$id" ]] || say "Stratégie « $former » renommée « $name »."
    fi
    if [[ -n "$id" ]]; then
        graph PATCH "$GRAPH/identity/conditionalAccess/policies/$id" "$(policy_body "$strength_id" "$target")" \
            >/dev/null || die "mise à jour de la stratégie « $name » impossible."
        say "Stratégie « $name » mise à jour : $id"
    else
        id=$(graph POST "$GRAPH/identity/conditionalAccess/policies" "$(policy_body "$strength_id" "$target")" \
            --query id -o tsv) || die "création de la stratégie « $name » impossible."
        say "Stratégie « $name » créée : $id"
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
    ensure_auth_context
    upsert_policy "$strength_id" app "$POLICY_NAME$APP_SUFFIX" "$POLICY_NAME"
    upsert_policy "$strength_id" context "$POLICY_NAME$CONTEXT_SUFFIX"

    if [[ "$ENABLE" -eq 1 ]]; then
        say "Les deux stratégies sont ACTIVES : application $APP_ID et contexte d'authentification $AUTH_CONTEXT."
    else
        cat >&2 <<EOF
Les deux stratégies (application $APP_ID, contexte d'authentification $AUTH_CONTEXT) sont en mode
« rapport seulement » : elles n'interdisent rien encore, et la présence de $AUTH_CONTEXT dans les jetons
ne prouve donc pas une authentification forte. Vérifiez dans Entra ID > Journaux de connexion (onglet
« Accès conditionnel en mode rapport seulement ») que les professionnels satisfont
« $STRENGTH_NAME », puis activez-les (mêmes options, plus --enable) :
    infra/conditional-access.sh --app-id $APP_ID --auth-context $AUTH_CONTEXT --enable
EOF
    fi
    say "Le broker doit exiger ce contexte : paramètre Bicep entraRequiredAcrs = '$AUTH_CONTEXT' (défaut : c1)."
}

main "$@"
