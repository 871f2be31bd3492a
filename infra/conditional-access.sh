#!/usr/bin/env bash
# Conditional Access for the broker (docs/deploy.md, "Accès conditionnel"), through Microsoft
# Graph v1.0 with az rest:
#   - the authentication strength FA01-ProSantéConnect (phishing-resistant: Windows Hello for
#     Business, FIDO2 security key, certificate-based authentication multifactor), created if
#     missing; one that already exists under that name (the ANS guide uses the same name) is reused
#     only if its allowedCombinations are exactly those three, otherwise the script refuses;
#   - the authentication context c1 (--auth-context), created or updated. The broker requests it
#     (claims challenge, BROKER_ENTRA_REQUIRED_ACRS) and refuses an ID token whose acrs claim lacks
#     it: that claim is the only proof of the sign-in's strength the broker can see. Entra includes
#     c1 when the policy bound to it is satisfied, but ALSO when no policy applies to it — none bound,
#     or only report-only ones ("ACRS requested | No policies configured with ACRS | Yes | Yes",
#     MicrosoftDocs/entra-docs, docs/identity-platform/developer-guide-conditional-access-authentication-context.md);
#   - two Conditional Access policies with the same grant (that strength) and session (sign-in
#     frequency 4 hours): "<name>-App" on the broker app, "<name>-Contexte" on the authentication
#     context (Graph does not allow both targets in one policy's applications condition). A policy
#     is created in report-only mode; a re-run updates it in place (found by display name) and KEEPS
#     its current state (Graph conditionalAccessPolicy.state: enabled, disabled or
#     enabledForReportingButNotEnforced, microsoftgraph/microsoft-graph-docs-contrib
#     api-reference/v1.0/resources/conditionalaccesspolicy.md) unless --enable or --report-only says
#     otherwise.
# --check (read-only) says whether an ENABLED policy with that strength, for all users, targets the
# context: the last step of the deployment, and what infra/deploy.sh verifies before it assigns groups.
# --dry-run reads the current state (GET only) and prints the writes it would send; --offline calls
# nothing and prints the requests of a first creation (for Microsoft Graph PowerShell or the portal).
# Every az call is bounded by a time-out (AZ_TIMEOUT, as in infra/deploy.sh, which calls --check).
# Requires Entra ID P1 and the Conditional Access Administrator (or Security Administrator) role.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly GRAPH="https://graph.microsoft.com/v1.0"
readonly STRENGTHS_URL="$GRAPH/policies/authenticationStrengthPolicies"
readonly CONTEXTS_URL="$GRAPH/identity/conditionalAccess/authenticationContextClassReferences"
readonly POLICIES_URL="$GRAPH/identity/conditionalAccess/policies"
readonly REPORT_ONLY="enabledForReportingButNotEnforced"
# Phishing-resistant MFA: the allowedCombinations of Entra's built-in "Phishing resistant MFA" strength
# (00000000-0000-0000-0000-000000000004; microsoftgraph/microsoft-graph-docs-contrib
# api-reference/v1.0/api/authenticationstrengthroot-list-policies.md) and of FA01-ProSantéConnect in the
# ANS/Microsoft guide. Sorted and space-separated, as the JMESPath queries below render a strength.
readonly EXPECTED_COMBINATIONS="fido2 windowsHelloForBusiness x509CertificateMultiFactor"

APP_ID=""
RESOURCE_GROUP=""
SUBSCRIPTION=""
ENVIRONMENT="prod"
DEPLOYMENT_NAME=""
MODE="apply"        # apply | dry-run | offline | check
STATE_CHOICE=""     # "" (keep the current state) | enabled | report-only
POLICY_NAME="AC02-PSCSansCouture-Session4hAvecMFA-Global-ToutePlateforme"
readonly APP_SUFFIX="-App" CONTEXT_SUFFIX="-Contexte"
AUTH_CONTEXT="c1"
readonly AUTH_CONTEXT_NAME="PSC sans couture — authentification forte"
STRENGTH_NAME="FA01-ProSantéConnect"
SIGN_IN_FREQUENCY_HOURS=4
INCLUDE_GROUPS=()
EXCLUDE_GROUPS=()
STRENGTH_ID=""
SUB_ARGS=()
PYTHON="${PYTHON:-python3}"
# Time-out in seconds of each az call (a Graph request or a read of the deployment), as in deploy.sh.
AZ_TIMEOUT="${AZ_TIMEOUT:-300}"

usage() {
    cat <<EOF
Usage : infra/conditional-access.sh (--app-id <client id> | --resource-group <nom>) [options]
        infra/conditional-access.sh --check [--auth-context <cN>]

Crée ou met à jour l'accès conditionnel du broker PSC sans couture : force d'authentification
« $STRENGTH_NAME » (Windows Hello Entreprise, clé FIDO2, authentification par certificat
multifacteur) et fréquence de connexion de $SIGN_IN_FREQUENCY_HOURS heures, imposées par deux stratégies :
  - « <nom>$APP_SUFFIX » sur l'application du broker ;
  - « <nom>$CONTEXT_SUFFIX » sur le contexte d'authentification ($AUTH_CONTEXT par défaut), que le script
    crée ou met à jour. Le broker exige ce contexte dans la revendication acrs du jeton Entra
    (paramètre entraRequiredAcrs, BROKER_ENTRA_REQUIRED_ACRS). Entra l'y met quand la stratégie liée
    au contexte est satisfaite, mais AUSSI quand aucune stratégie active ne s'y applique (aucune
    stratégie liée, ou seulement en mode rapport) : tant que la stratégie « <nom>$CONTEXT_SUFFIX » n'est
    pas active, la présence du contexte ne prouve rien.
Une stratégie créée l'est en mode « rapport seulement ». Relancé, le script met à jour les
stratégies existantes en CONSERVANT leur état (active, rapport seulement, désactivée), sauf
--enable ou --report-only. Une force « $STRENGTH_NAME » déjà présente n'est reprise que si elle
autorise exactement Windows Hello Entreprise, FIDO2 et le certificat multifacteur ; sinon le
script refuse.

Options :
  -a, --app-id <client id>       Client id de l'application Entra du broker (sortie entraClientId).
  -g, --resource-group <nom>     À défaut de --app-id : lit entraClientId dans le déploiement du groupe.
  -e, --environment <nom>        Environnement (paramètre environmentName) : le déploiement lu avec
                                 --resource-group s'appelle psc-sans-couture-<nom> (défaut : $ENVIRONMENT).
  -n, --name <nom>               Nom du déploiement ARM à lire, s'il diffère de psc-sans-couture-<nom>.
  -s, --subscription <id|nom>    Abonnement du groupe de ressources (défaut : celui de az account show).
      --auth-context <cN>        Contexte d'authentification (c1 à c25) créé ou mis à jour et ciblé par
                                 la stratégie « …$CONTEXT_SUFFIX » (défaut : $AUTH_CONTEXT). Doit être la valeur
                                 du paramètre Bicep entraRequiredAcrs. Le script refuse un contexte
                                 qui existe déjà sous un autre nom (il sert peut-être à autre chose).
      --enable                   Active les deux stratégies.
      --report-only              Met les deux stratégies en mode « rapport seulement ».
                                 (Sans l'une ou l'autre : état conservé ; rapport seulement à la création.)
      --policy-name <nom>        Préfixe du nom des stratégies, suivi de « $APP_SUFFIX » et de
                                 « $CONTEXT_SUFFIX » (défaut : $POLICY_NAME).
      --strength-name <nom>      Nom de la force d'authentification (défaut : $STRENGTH_NAME).
      --sign-in-frequency <h>    Fréquence de connexion en heures (défaut : $SIGN_IN_FREQUENCY_HOURS).
      --include-group <id>       Limite les stratégies à ce groupe (répétable ; défaut : tous les
                                 utilisateurs). Pour un pilote seulement : --check ne tient pour
                                 protégé qu'un contexte dont la stratégie s'applique à tous.
      --exclude-group <id>       Exclut ce groupe (répétable) : comptes d'urgence (« break glass »).
                                 Entra leur délivre le contexte sans contrôle : ne les affectez pas
                                 à l'application du broker.
      --check                    Vérifie, en lecture seule, que le contexte est protégé : une
                                 stratégie ACTIVE, avec la force attendue et pour tous les
                                 utilisateurs, le cible. Code de sortie 0 si oui, 1 sinon. Dernière
                                 étape du déploiement.
      --dry-run                  Lit l'état actuel (requêtes GET seulement) et affiche les requêtes
                                 d'écriture qu'il enverrait, sans les envoyer.
      --offline                  N'appelle rien : affiche les requêtes d'une première création (à
                                 appliquer avec Microsoft Graph PowerShell si Azure CLI est refusé).
  -h, --help                     Affiche cette aide.

Variables d'environnement :
  AZ_TIMEOUT    Délai maximal de chaque commande az, en secondes (défaut : 300).
  PYTHON        Interpréteur Python 3 qui applique ce délai (défaut : python3).

Rôle requis : Administrateur de l'accès conditionnel (Conditional Access Administrator) ou
Administrateur de la sécurité ; lecture seule (--check) : Lecteur de la sécurité suffit.
Licence : Entra ID P1.
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

set_mode() {
    [[ "$MODE" == "apply" || "$MODE" == "$1" ]] || die "--$MODE et --$1 ne vont pas ensemble."
    MODE="$1"
}

set_state_choice() {
    [[ -z "$STATE_CHOICE" || "$STATE_CHOICE" == "$1" ]] || die "--enable et --report-only ne vont pas ensemble."
    STATE_CHOICE="$1"
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -a|--app-id)
                need_value "$1" "$#"; APP_ID="$2"; shift 2 ;;
            -g|--resource-group)
                need_value "$1" "$#"; RESOURCE_GROUP="$2"; shift 2 ;;
            -e|--environment)
                need_value "$1" "$#"; ENVIRONMENT="$2"; shift 2 ;;
            -n|--name)
                need_value "$1" "$#"; DEPLOYMENT_NAME="$2"; shift 2 ;;
            -s|--subscription)
                need_value "$1" "$#"; SUBSCRIPTION="$2"; shift 2 ;;
            --auth-context)
                need_value "$1" "$#"; AUTH_CONTEXT="$2"; shift 2 ;;
            --enable)
                set_state_choice enabled; shift ;;
            --report-only)
                set_state_choice report-only; shift ;;
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
            --check)
                set_mode check; shift ;;
            --dry-run)
                set_mode dry-run; shift ;;
            --offline)
                set_mode offline; shift ;;
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
    if [[ "$MODE" == "check" ]]; then
        [[ -z "$STATE_CHOICE" ]] || die "--check ne modifie rien : sans --enable ni --report-only."
    elif [[ "$MODE" != "offline" ]]; then
        [[ -n "$APP_ID" || -n "$RESOURCE_GROUP" ]] || die "--app-id ou --resource-group est obligatoire (voir --help)."
    fi
    [[ -z "$APP_ID" ]] || is_guid "$APP_ID" || die "--app-id attend un client id (GUID) : $APP_ID"
    is_plain_name "$POLICY_NAME" || die "--policy-name : nom vide ou avec guillemets/antislash."
    is_plain_name "$STRENGTH_NAME" || die "--strength-name : nom vide ou avec guillemets/antislash."
    [[ "$ENVIRONMENT" =~ ^[A-Za-z0-9-]{2,10}$ ]] || die "--environment attend la valeur de environmentName (2 à 10 lettres, chiffres, tirets)."
    [[ -z "$DEPLOYMENT_NAME" ]] || is_plain_name "$DEPLOYMENT_NAME" || die "--name : nom de déploiement invalide."
    [[ "$AUTH_CONTEXT" =~ ^c([1-9]|1[0-9]|2[0-5])$ ]] \
        || die "--auth-context attend un identifiant de contexte d'authentification, c1 à c25 : $AUTH_CONTEXT"
    [[ "$SIGN_IN_FREQUENCY_HOURS" =~ ^[1-9][0-9]*$ ]] || die "--sign-in-frequency attend un nombre d'heures."
    [[ "$AZ_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "AZ_TIMEOUT est un nombre de secondes."
    local group
    # ${a[@]+"${a[@]}"}: empty arrays under set -u, also with the bash 3.2 of macOS.
    for group in ${INCLUDE_GROUPS[@]+"${INCLUDE_GROUPS[@]}"} ${EXCLUDE_GROUPS[@]+"${EXCLUDE_GROUPS[@]}"}; do
        is_guid "$group" || die "identifiant de groupe invalide (GUID attendu) : $group"
    done
    DEPLOYMENT_NAME="${DEPLOYMENT_NAME:-psc-sans-couture-$ENVIRONMENT}"
    # Every ARM call names its subscription: no az account set, which would change the default of
    # every other shell of the administrator.
    if [[ -n "$SUBSCRIPTION" ]]; then SUB_ARGS=(--subscription "$SUBSCRIPTION"); fi
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
    # policy_body <strength id> app|context <state>
    local strength_id="$1" target="$2" state="$3" name applications users
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

new_policy_state() {
    # State of a policy the script creates: report-only unless --enable.
    if [[ "$STATE_CHOICE" == "enabled" ]]; then printf 'enabled'; else printf '%s' "$REPORT_ONLY"; fi
}

kept_policy_state() {
    # State of an existing policy after a re-run: the flag's, or the one it has.
    case "$STATE_CHOICE" in
        enabled) printf 'enabled' ;;
        report-only) printf '%s' "$REPORT_ONLY" ;;
        *) printf '%s' "$1" ;;
    esac
}

state_label() {
    case "$1" in
        enabled) printf 'active' ;;
        "$REPORT_ONLY") printf 'rapport seulement' ;;
        disabled) printf 'désactivée' ;;
        *) printf '%s' "$1" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Output of --dry-run / --offline: "# comment" lines, then "METHOD URL" and the JSON body per write
# ---------------------------------------------------------------------------------------------

note() {
    if [[ "$MODE" == "apply" ]]; then say "$*"; else printf '# %s\n' "$*"; fi
}

print_request() {
    printf '%s %s\n%s\n' "$1" "$2" "$3"
}

print_offline_requests() {
    local strength_id="<id de la force $STRENGTH_NAME>" state
    state=$(new_policy_state)
    note "Hors ligne : état actuel non lu. Requêtes d'une première création ; une stratégie qui existe"
    note "déjà se modifie par PATCH $POLICIES_URL/<id>."
    note "1. Force d'authentification (si elle n'existe pas encore) :"
    print_request POST "$STRENGTHS_URL" "$(strength_body)"
    note "2. Contexte d'authentification $AUTH_CONTEXT (PATCH le crée ou le met à jour) :"
    print_request PATCH "$CONTEXTS_URL/$AUTH_CONTEXT" "$(auth_context_body)"
    note "3. Stratégie sur l'application du broker ($(state_label "$state")) :"
    print_request POST "$POLICIES_URL" "$(policy_body "$strength_id" app "$state")"
    note "4. Stratégie sur le contexte d'authentification $AUTH_CONTEXT ($(state_label "$state")) :"
    print_request POST "$POLICIES_URL" "$(policy_body "$strength_id" context "$state")"
}

# ---------------------------------------------------------------------------------------------
# az with a time-out; Graph calls
# ---------------------------------------------------------------------------------------------

az_timed() {
    # az_timed <seconds> <az arguments...>
    local seconds="$1"
    shift
    # No standard input (az fails instead of prompting); the whole process group killed after the
    # time-out, exit status 124 as timeout(1).
    "$PYTHON" "$SCRIPT_DIR/run_with_timeout.py" "$seconds" az "$@"
}

explain_time_out() {
    # explain_time_out <status>: says so when az was stopped by the time-out.
    [[ "$1" -eq 124 ]] || return 0
    say ""
    say "Délai dépassé : la commande az n'a pas abouti en $AZ_TIMEOUT s et a été interrompue. Relancez"
    say "le script (rejouable ; les stratégies gardent leur état), au besoin avec un délai plus long"
    say "(AZ_TIMEOUT=<secondes>)."
}

explain_graph_failure() {
    local log="$1"
    if grep -qE 'Authorization_RequestDenied|AccessDenied|accessDenied|Forbidden|403' "$log"; then
        say ""
        say "Microsoft Graph refuse la requête. Causes possibles :"
        say "  - le compte n'a pas le rôle Entra « Administrateur de l'accès conditionnel » (ou"
        say "    « Administrateur de la sécurité » ; « Lecteur de la sécurité » pour --check), ou ce"
        say "    rôle n'est pas activé (PIM) ;"
        say "  - le jeton d'Azure CLI ne porte pas l'autorisation Policy.ReadWrite.ConditionalAccess"
        say "    (limitation connue d'Azure CLI, Azure/azure-cli#33062)."
        say "Dans ce cas, appliquez les requêtes affichées par --offline avec Microsoft Graph PowerShell"
        say "(Connect-MgGraph -Scopes Policy.ReadWrite.ConditionalAccess,Policy.Read.All puis"
        say "Invoke-MgGraphRequest) ou dans le portail Entra."
    fi
}

graph() {
    # graph <method> <url> [body] [extra az rest arguments...]
    local method="$1" url="$2" body="${3:-}" log status=0
    shift 3 || shift $#
    log=$(mktemp)
    if [[ -n "$body" ]]; then
        az_timed "$AZ_TIMEOUT" rest --method "$method" --url "$url" --headers "Content-Type=application/json" \
            --body "$body" "$@" 2>"$log" || status=$?
    else
        az_timed "$AZ_TIMEOUT" rest --method "$method" --url "$url" "$@" 2>"$log" || status=$?
    fi
    if [[ "$status" -ne 0 ]]; then
        cat "$log" >&2
        explain_time_out "$status"
        explain_graph_failure "$log"
    fi
    rm -f -- "$log"
    return "$status"
}

graph_write() {
    # graph_write <method> <url> <body> <what>: sends the write (apply) or prints it (--dry-run).
    # Prints the created object's id for a POST that is sent.
    local method="$1" url="$2" body="$3" what="$4"
    if [[ "$MODE" == "dry-run" ]]; then
        print_request "$method" "$url" "$body"
    elif [[ "$method" == "POST" ]]; then
        graph POST "$url" "$body" --query id -o tsv || die "$what impossible."
    else
        graph "$method" "$url" "$body" >/dev/null || die "$what impossible."
    fi
}

resolve_app_id() {
    [[ -z "$APP_ID" ]] || return 0
    local status=0
    APP_ID=$(az_timed "$AZ_TIMEOUT" deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} --query properties.outputs.entraClientId.value -o tsv 2>/dev/null) || status=$?
    if [[ "$status" -eq 124 ]]; then
        explain_time_out "$status"
        die "lecture du déploiement $DEPLOYMENT_NAME interrompue."
    elif [[ "$status" -ne 0 ]]; then
        die "déploiement $DEPLOYMENT_NAME introuvable dans $RESOURCE_GROUP (--environment, --name ?) : passez --app-id."
    fi
    is_guid "$APP_ID" || die "sortie entraClientId illisible dans $DEPLOYMENT_NAME : passez --app-id."
}

ensure_strength() {
    # Sets STRENGTH_ID: the existing strength of that name if its allowedCombinations are exactly the
    # expected ones, a new one if there is none; refuses a different (weaker or other) existing one.
    local rows id combos
    rows=$(graph GET "$STRENGTHS_URL?\$filter=policyType%20eq%20'custom'" "" \
        --query "value[?displayName=='$STRENGTH_NAME'].[id, join(' ', sort(allowedCombinations || \`[]\`)) || '-']" -o tsv) \
        || die "lecture des forces d'authentification impossible."
    if [[ -z "$rows" ]]; then
        note "1. Force d'authentification « $STRENGTH_NAME » absente : création."
        if [[ "$MODE" == "dry-run" ]]; then
            print_request POST "$STRENGTHS_URL" "$(strength_body)"
            STRENGTH_ID="<id de la force $STRENGTH_NAME>"
        else
            STRENGTH_ID=$(graph_write POST "$STRENGTHS_URL" "$(strength_body)" "création de la force d'authentification")
            say "Force d'authentification « $STRENGTH_NAME » créée : $STRENGTH_ID"
        fi
        return
    fi
    [[ "$rows" != *$'\n'* ]] \
        || die "plusieurs forces d'authentification s'appellent « $STRENGTH_NAME » : renommez les doublons (Entra ID > Méthodes d'authentification > Forces d'authentification) ou passez --strength-name."
    IFS=$'\t' read -r id combos <<<"$rows"
    [[ "$combos" != "-" ]] || combos=""
    if [[ "$combos" != "$EXPECTED_COMBINATIONS" ]]; then
        die "la force d'authentification « $STRENGTH_NAME » existe déjà ($id) mais n'autorise pas
exactement les méthodes attendues.
  attendues : $EXPECTED_COMBINATIONS
  trouvées  : ${combos:-(aucune)}
Une force plus faible (mot de passe + SMS, Authenticator…) ou différente laisserait passer une
connexion que le broker tiendrait pour forte. Corrigez-la dans Entra ID > Méthodes
d'authentification > Forces d'authentification (méthodes : Windows Hello Entreprise, clé de
sécurité FIDO2, authentification par certificat multifacteur), ou choisissez un autre nom avec
--strength-name pour que le script crée la sienne."
    fi
    note "1. Force d'authentification « $STRENGTH_NAME » existante ($id) : méthodes conformes, reprise telle quelle."
    STRENGTH_ID="$id"
}

ensure_auth_context() {
    local name
    name=$(graph GET "$CONTEXTS_URL" "" --query "value[?id=='$AUTH_CONTEXT'].displayName | [0]" -o tsv) \
        || die "lecture des contextes d'authentification impossible."
    [[ "$name" != "None" ]] || name=""
    if [[ -n "$name" && "$name" != "$AUTH_CONTEXT_NAME" ]]; then
        die "le contexte d'authentification $AUTH_CONTEXT existe déjà sous le nom « $name » et sert peut-être
à autre chose. Choisissez un contexte libre avec --auth-context <cN> (et déployez le broker avec
entraRequiredAcrs = '<cN>'), ou, s'il doit bien servir au broker, renommez-le « $AUTH_CONTEXT_NAME »
dans Entra ID > Accès conditionnel > Contextes d'authentification."
    fi
    if [[ -n "$name" ]]; then
        note "2. Contexte d'authentification $AUTH_CONTEXT « $AUTH_CONTEXT_NAME » existant : mise à jour."
    else
        note "2. Contexte d'authentification $AUTH_CONTEXT absent : création."
    fi
    graph_write PATCH "$CONTEXTS_URL/$AUTH_CONTEXT" "$(auth_context_body)" \
        "création ou mise à jour du contexte d'authentification $AUTH_CONTEXT"
}

policy_row() {
    # "<id><TAB><state>" of the policy with that display name, empty if none; refuses duplicates.
    local rows
    rows=$(graph GET "$POLICIES_URL" "" --query "value[?displayName=='$1'].[id, state]" -o tsv) \
        || die "lecture des stratégies d'accès conditionnel impossible."
    [[ "$rows" != *$'\n'* ]] \
        || die "plusieurs stratégies s'appellent « $1 » : supprimez ou renommez les doublons dans Entra ID > Accès conditionnel."
    printf '%s' "$rows"
}

upsert_policy() {
    # upsert_policy <step> app|context <display name> [former display name]
    local step="$1" target="$2" name="$3" former="${4:-}" row id current state
    row=$(policy_row "$name")
    if [[ -z "$row" && -n "$former" ]]; then
        # Before the authentication context, this script named the app policy without a suffix:
        # rename that policy rather than leave a duplicate behind.
        row=$(policy_row "$former")
        [[ -z "$row" ]] || note "Stratégie « $former » (version antérieure du script) : renommée « $name »."
    fi
    if [[ -n "$row" ]]; then
        IFS=$'\t' read -r id current <<<"$row"
        state=$(kept_policy_state "$current")
        if [[ "$state" == "$current" ]]; then
            note "$step. Stratégie « $name » existante ($id) : mise à jour, état conservé : $(state_label "$state") ($state)."
        else
            note "$step. Stratégie « $name » existante ($id) : mise à jour, état $(state_label "$current") -> $(state_label "$state") ($state)."
        fi
        graph_write PATCH "$POLICIES_URL/$id" "$(policy_body "$STRENGTH_ID" "$target" "$state")" \
            "mise à jour de la stratégie « $name »"
    else
        state=$(new_policy_state)
        note "$step. Stratégie « $name » absente : création, $(state_label "$state") ($state)."
        if [[ "$MODE" == "dry-run" ]]; then
            print_request POST "$POLICIES_URL" "$(policy_body "$STRENGTH_ID" "$target" "$state")"
        else
            id=$(graph_write POST "$POLICIES_URL" "$(policy_body "$STRENGTH_ID" "$target" "$state")" \
                "création de la stratégie « $name »")
            say "Stratégie « $name » créée : $id"
        fi
    fi
    FINAL_STATES+=("$state")
}

# ---------------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------------

policy_protects() {
    # policy_protects <state> <combinations> <operator> <built-in controls> <included users>:
    # prints why it does not protect the context, nothing when it does.
    local state="$1" combos="$2" operator="$3" builtins="$4" users="$5"
    if [[ "$state" != "enabled" ]]; then
        printf '%s : elle n'"'"'impose rien' "$(state_label "$state")"
    elif [[ "$combos" != "$EXPECTED_COMBINATIONS" ]]; then
        printf 'force d'"'"'authentification %s au lieu de %s' "${combos:-absente}" "$EXPECTED_COMBINATIONS"
    elif [[ -n "$builtins" && "$operator" != "AND" ]]; then
        printf 'un autre contrôle (%s) suffit à la place de la force (opérateur OU)' "$builtins"
    elif [[ " $users " != *" All "* ]]; then
        printf 'ne s'"'"'applique pas à tous les utilisateurs (includeUsers : %s)' "${users:-aucun}"
    fi
}

check_protection() {
    # Read-only: is the context bound to an ENABLED policy that requires the expected strength of
    # every user? Entra issues a requested context no enforced policy applies to, so nothing less
    # makes acrs a proof (developer-guide-conditional-access-authentication-context.md).
    local context available rows protecting="" state combos operator builtins users excl_users excl_groups name reason
    context=$(graph GET "$CONTEXTS_URL" "" --query "value[?id=='$AUTH_CONTEXT'].[displayName, isAvailable]" -o tsv) \
        || die "lecture des contextes d'authentification impossible."
    if [[ -z "$context" ]]; then
        say "Contexte d'authentification $AUTH_CONTEXT : absent du tenant."
    else
        IFS=$'\t' read -r name available <<<"$context"
        say "Contexte d'authentification $AUTH_CONTEXT : « $name »$([[ "$available" == "True" ]] || printf ' (non publié pour les applications)')."
    fi
    # One TSV row per policy targeting the context. Tabs are IFS whitespace, so `read` would merge an
    # empty field with the next: empty lists come out as "-" (JMESPath: '' || '-').
    rows=$(graph GET "$POLICIES_URL" "" --query "value[?contains(conditions.applications.includeAuthenticationContextClassReferences || \`[]\`, '$AUTH_CONTEXT')].[state, join(' ', sort(grantControls.authenticationStrength.allowedCombinations || \`[]\`)) || '-', grantControls.operator || '-', join(' ', grantControls.builtInControls || \`[]\`) || '-', join(' ', conditions.users.includeUsers || \`[]\`) || '-', length(conditions.users.excludeUsers || \`[]\`), length(conditions.users.excludeGroups || \`[]\`), displayName]" -o tsv) \
        || die "lecture des stratégies d'accès conditionnel impossible."
    while IFS=$'\t' read -r state combos operator builtins users excl_users excl_groups name; do
        [[ -n "$state" ]] || continue
        [[ "$combos" != "-" ]] || combos=""
        [[ "$builtins" != "-" ]] || builtins=""
        [[ "$users" != "-" ]] || users=""
        reason=$(policy_protects "$state" "$combos" "$operator" "$builtins" "$users")
        if [[ -z "$reason" ]]; then
            say "  - « $name » : active, force conforme, tous les utilisateurs — protège $AUTH_CONTEXT."
            if [[ "$excl_users" != "0" || "$excl_groups" != "0" ]]; then
                say "    Exclusions : $excl_users utilisateur(s), $excl_groups groupe(s). Entra leur délivre $AUTH_CONTEXT sans contrôle :"
                say "    n'affectez aucun de ces comptes (comptes d'urgence) à l'application du broker."
            fi
            protecting="$name"
        else
            say "  - « $name » : ne protège pas $AUTH_CONTEXT ($reason)."
        fi
    done <<<"$rows"
    if [[ -n "$protecting" ]]; then
        printf 'PROTÉGÉ : le contexte %s est lié à la stratégie active « %s » (force %s).\n' \
            "$AUTH_CONTEXT" "$protecting" "$EXPECTED_COMBINATIONS"
        return 0
    fi
    printf 'NON PROTÉGÉ : aucune stratégie active exigeant la force attendue de tous les utilisateurs ne cible %s.\n' "$AUTH_CONTEXT"
    say "Entra délivre alors $AUTH_CONTEXT à qui le demande, sans rien exiger : le contrôle acrs du broker ne"
    say "prouve rien. Créez ou activez la stratégie :"
    say "    infra/conditional-access.sh --app-id <entraClientId> --auth-context $AUTH_CONTEXT --enable"
    return 1
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

FINAL_STATES=()

summary() {
    local all_enabled=1 state
    for state in "${FINAL_STATES[@]}"; do
        [[ "$state" == "enabled" ]] || all_enabled=0
    done
    if [[ "$all_enabled" -eq 1 ]]; then
        say "Les deux stratégies sont ACTIVES : application $APP_ID et contexte d'authentification $AUTH_CONTEXT."
        say "Dernière étape, vérifiez que le contexte est protégé :"
        say "    infra/conditional-access.sh --check --auth-context $AUTH_CONTEXT"
    else
        cat >&2 <<EOF
Les stratégies (application $APP_ID, contexte d'authentification $AUTH_CONTEXT) ne sont pas toutes
actives : une stratégie en mode « rapport seulement » ou désactivée n'interdit rien, et Entra délivre
alors $AUTH_CONTEXT sans rien exiger. Vérifiez dans Entra ID > Journaux de connexion (onglet « Accès
conditionnel en mode rapport seulement ») que vos comptes de test satisfont « $STRENGTH_NAME », puis
activez-les (mêmes options, plus --enable) et vérifiez :
    infra/conditional-access.sh --app-id $APP_ID --auth-context $AUTH_CONTEXT --enable
    infra/conditional-access.sh --check --auth-context $AUTH_CONTEXT
EOF
    fi
    say "Le broker doit exiger ce contexte : paramètre Bicep entraRequiredAcrs = '$AUTH_CONTEXT' (défaut : c1)."
}

main() {
    parse_args "$@"
    validate

    if [[ "$MODE" == "offline" ]]; then
        print_offline_requests
        return
    fi

    command -v az >/dev/null 2>&1 || die "Azure CLI (az) introuvable."
    command -v "$PYTHON" >/dev/null 2>&1 || die "Python introuvable ($PYTHON) : installez Python 3 ou passez PYTHON=<chemin>."
    local status=0
    az_timed "$AZ_TIMEOUT" account show ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} >/dev/null 2>&1 || status=$?
    if [[ "$status" -eq 124 ]]; then
        explain_time_out "$status"
        die "az account show interrompu."
    elif [[ "$status" -ne 0 ]]; then
        die "aucune session Azure CLI : lancez d'abord az login."
    fi

    if [[ "$MODE" == "check" ]]; then
        check_protection
        return
    fi

    resolve_app_id
    [[ "$MODE" == "apply" ]] || note "Aperçu (--dry-run) : lecture seule ; les écritures ci-dessous ne sont PAS envoyées."
    ensure_strength
    ensure_auth_context
    upsert_policy 3 app "$POLICY_NAME$APP_SUFFIX" "$POLICY_NAME"
    upsert_policy 4 context "$POLICY_NAME$CONTEXT_SUFFIX"
    [[ "$MODE" == "dry-run" ]] || summary
}

main "$@"
