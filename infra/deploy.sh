#!/usr/bin/env bash
# Deploy the PSC sans couture broker into an Azure resource group (docs/deploy.md):
#   1. check the prerequisites (az CLI, signed-in account, Bicep >= 0.36.1, Python + cryptography)
#      and the parameter file (not the example's placeholder digital service);
#   2. create the resource group if needed;
#   3. az deployment group create with the .bicepparam file (infra/bicep/main.bicep), named
#      psc-sans-couture-<environmentName> so that two environments of one resource group keep their
#      own deployment records (and this script reads its own environment's vault);
#   4. write the first signing-key version to Key Vault if the secret does not exist yet, with a
#      Key Vault Secrets Officer assignment that exists only for that write (deleted before exit);
#   5. build the code package (respecting .funcignore) and publish it (remote build);
#   6. assign the professionals' groups (--group) to the enterprise application — which requires
#      assignment, so nobody signs in before that — but only once infra/conditional-access.sh --check
#      says an ENABLED Conditional Access policy protects the authentication context the broker
#      requires: before that, the acrs claim proves nothing;
#   7. print what is left to do by hand (PSC redirect URI, Conditional Access, groups, --check).
# --what-if only previews the Azure resources (not the Graph extension's, nor steps 4-6).
# Every az call names its subscription (no az account set) and is bounded by a time-out.
# Messages are in French: the audience is the hospital's (ES) administrators.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly MIN_BICEP_VERSION="0.36.1"
readonly GRAPH="https://graph.microsoft.com/v1.0"
# Built-in role Key Vault Secrets Officer (MicrosoftDocs/azure-docs, articles/key-vault/general/rbac-guide.md).
readonly SECRETS_OFFICER_ROLE="b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
# appRoleId meaning "assigned to the app without any specific app role" (the broker declares none):
# microsoftgraph/msgraph-bicep-types, generated/microsoftgraph/microsoft.graph/v1.0/types.md, appRoleAssignedTo.
readonly DEFAULT_APP_ROLE_ID="00000000-0000-0000-0000-000000000000"
# main.bicep's default environmentName, when the parameter file does not set it.
readonly DEFAULT_ENVIRONMENT="prod"

RESOURCE_GROUP=""
PARAMETERS_FILE=""
LOCATION="francecentral"
SUBSCRIPTION=""
DEPLOYMENT_NAME=""
ENVIRONMENT=""
WHAT_IF=0
SKIP_CODE=0
ASSIGN_ONLY=0
PACKAGE_ONLY=""
SOURCE_DIR="$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
DEPLOYER_OBJECT_ID=""
DEPLOYER_TYPE=""
GROUP_IDS=()
WORK_DIR=""
SUB_ARGS=()
TEMPORARY_ROLE_ID=""
GROUPS_STATUS="none"
ACCOUNT_USER_NAME=""
ACCOUNT_USER_TYPE=""
# What the script needs from this environment's deployment record, read in one az call
# (load_record): <variable>:<path under properties>. Empty when absent.
readonly RECORD_FIELDS=(
    REC_ENVIRONMENT:parameters.environmentName
    REC_ACRS:parameters.entraRequiredAcrs
    OUT_ISSUER:outputs.issuer
    OUT_PSC_REDIRECT:outputs.pscRedirectUri
    OUT_CLIENT_ID:outputs.entraClientId
    OUT_SP_ID:outputs.entraServicePrincipalId
    OUT_APP:outputs.functionAppName
    OUT_VAULT:outputs.keyVaultName
    OUT_VAULT_ID:outputs.keyVaultId
    OUT_KEY_NAME:outputs.signingKeyName
    OUT_PSC_NAME:outputs.pscCredentialName
)
for field in "${RECORD_FIELDS[@]}"; do
    printf -v "${field%%:*}" '%s' ""
done
# Time-outs in seconds: the deployment itself (5 to 15 minutes usually), the code publication (remote
# build), and every other az call.
DEPLOY_TIMEOUT="${DEPLOY_TIMEOUT:-3600}"
PUBLISH_TIMEOUT="${PUBLISH_TIMEOUT:-1800}"
AZ_TIMEOUT="${AZ_TIMEOUT:-300}"

usage() {
    cat <<EOF
Usage : infra/deploy.sh --resource-group <nom> --parameters <fichier.bicepparam> [--group <id>]... [options]

Déploie le broker PSC sans couture : infrastructure (Bicep), première clé de signature, code de la
Function App, puis affecte les groupes de professionnels à l'application d'entreprise.
Prérequis : az login, puis az bicep upgrade (Bicep >= $MIN_BICEP_VERSION).

L'application d'entreprise exige une affectation : personne ne peut se connecter tant qu'aucun groupe
n'est affecté. Le script n'affecte les groupes (--group) qu'une fois le contexte d'authentification
exigé par le broker (entraRequiredAcrs, c1 par défaut) protégé par une stratégie d'accès
conditionnel ACTIVE (infra/conditional-access.sh --check) : avant, Entra délivre ce contexte sans
rien exiger. Ordre : deploy.sh, conditional-access.sh, conditional-access.sh --enable,
deploy.sh --assign-only --group <id>, conditional-access.sh --check.

Options :
  -g, --resource-group <nom>     Groupe de ressources cible (créé s'il n'existe pas). Obligatoire.
  -p, --parameters <fichier>     Fichier de paramètres .bicepparam (ex. infra/bicep/main.bicepparam).
                                 Obligatoire. Refusé tant qu'il contient le service numérique d'exemple.
      --group <object id>        Groupe Entra de professionnels à affecter à l'application d'entreprise
                                 (répétable). Affecté seulement si le contexte est protégé (voir
                                 plus haut) ; sinon le script dit quoi faire et n'affecte rien.
      --assign-only              Affecte seulement les groupes --group (même vérification), sans
                                 redéployer : l'étape qui suit conditional-access.sh --enable.
  -l, --location <région>        Région du groupe de ressources s'il faut le créer
                                 (défaut : $LOCATION).
  -s, --subscription <id|nom>    Abonnement Azure, passé à chaque commande az (défaut : celui de
                                 az account show ; le script ne change pas l'abonnement par défaut).
  -n, --name <nom>               Nom du déploiement ARM (défaut : psc-sans-couture-<environmentName>,
                                 environmentName étant lu dans le fichier de paramètres).
      --what-if                  Aperçu seulement : az deployment group what-if, aucune modification.
                                 Ne montre pas l'application Entra (extension Microsoft Graph), ni la
                                 clé de signature, ni le code, ni les affectations de groupes.
      --skip-code                Infrastructure, clé de signature et groupes, sans publier le code.
      --package-only <fichier.zip>
                                 Construit seulement le paquet du code (selon .funcignore) et s'arrête ;
                                 n'appelle pas Azure.
      --source <dossier>         Racine du code à publier (défaut : la racine du dépôt).
      --deployer-object-id <id>  Object id qui reçoit TEMPORAIREMENT Key Vault Secrets Officer, le temps
                                 d'écrire la première clé de signature (défaut : l'utilisateur ou le
                                 principal de service connecté). Le rôle est retiré avant la fin.
      --deployer-type <type>     User, Group ou ServicePrincipal (défaut : déduit du compte connecté).
      --python <chemin>          Interpréteur Python avec le paquet cryptography (défaut : \$PYTHON ou
                                 python3).
  -h, --help                     Affiche cette aide.

Variables d'environnement :
  PSC_CLIENT_SECRET   Secret client PSC fourni par l'ANS. Demandé au premier déploiement s'il n'est
                      pas encore dans Key Vault ; vide ensuite = conserver le secret en place.
  DEPLOY_TIMEOUT      Délai maximal du déploiement Bicep, en secondes (défaut : 3600).
  PUBLISH_TIMEOUT     Délai maximal de la publication du code, en secondes (défaut : 1800).
  AZ_TIMEOUT          Délai maximal de chaque autre commande az, en secondes (défaut : 300).

Exemple :
  az bicep upgrade
  infra/deploy.sh --resource-group rg-psc-sans-couture --parameters infra/bicep/prod.bicepparam
  # ... conditional-access.sh, puis --enable (voir la fin du déploiement) ...
  infra/deploy.sh --resource-group rg-psc-sans-couture --parameters infra/bicep/prod.bicepparam \\
      --assign-only --group <object id du groupe des professionnels>
EOF
}

say() { printf '%s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf 'Erreur : %s\n' "$*" >&2
    exit 1
}

cleanup() {
    remove_temporary_role
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        rm -rf -- "$WORK_DIR"
    fi
}
trap cleanup EXIT

need_value() {
    # $1 = option, $2 = number of remaining arguments (value included)
    if [[ "$2" -lt 2 ]]; then
        die "l'option $1 attend une valeur (voir --help)."
    fi
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -g|--resource-group)
                need_value "$1" "$#"; RESOURCE_GROUP="$2"; shift 2 ;;
            -p|--parameters)
                need_value "$1" "$#"; PARAMETERS_FILE="$2"; shift 2 ;;
            --group)
                need_value "$1" "$#"; GROUP_IDS+=("$2"); shift 2 ;;
            --assign-only)
                ASSIGN_ONLY=1; shift ;;
            -l|--location)
                need_value "$1" "$#"; LOCATION="$2"; shift 2 ;;
            -s|--subscription)
                need_value "$1" "$#"; SUBSCRIPTION="$2"; shift 2 ;;
            -n|--name)
                need_value "$1" "$#"; DEPLOYMENT_NAME="$2"; shift 2 ;;
            --what-if)
                WHAT_IF=1; shift ;;
            --skip-code)
                SKIP_CODE=1; shift ;;
            --package-only)
                need_value "$1" "$#"; PACKAGE_ONLY="$2"; shift 2 ;;
            --source)
                need_value "$1" "$#"; SOURCE_DIR="$2"; shift 2 ;;
            --deployer-object-id)
                need_value "$1" "$#"; DEPLOYER_OBJECT_ID="$2"; shift 2 ;;
            --deployer-type)
                need_value "$1" "$#"; DEPLOYER_TYPE="$2"; shift 2 ;;
            --python)
                need_value "$1" "$#"; PYTHON="$2"; shift 2 ;;
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

# ---------------------------------------------------------------------------------------------
# The parameter file
# ---------------------------------------------------------------------------------------------

param_literal() {
    # The quoted literal the .bicepparam file gives to a parameter (param <name> = '<value>').
    sed -n "s/^param $1[[:space:]]*=[[:space:]]*'\\([^']*\\)'[[:space:]]*\$/\\1/p" "$PARAMETERS_FILE" | head -n 1
}

read_environment() {
    # environmentName names the deployment records (psc-sans-couture-<environmentName>).
    ENVIRONMENT=$(param_literal environmentName)
    if [[ -z "$ENVIRONMENT" ]]; then
        ! grep -qE '^param[[:space:]]+environmentName[[:space:]]*=' "$PARAMETERS_FILE" \
            || die "environmentName doit être une valeur entre apostrophes dans $PARAMETERS_FILE (ex. param environmentName = 'prod') : le script en tire le nom du déploiement."
        ENVIRONMENT="$DEFAULT_ENVIRONMENT"
    fi
    [[ "$ENVIRONMENT" =~ ^[A-Za-z0-9-]{2,10}$ ]] || die "environmentName « $ENVIRONMENT » : 2 à 10 lettres, chiffres ou tirets."
    DEPLOYMENT_NAME="${DEPLOYMENT_NAME:-psc-sans-couture-$ENVIRONMENT}"
}

refuse_example_parameters() {
    # The example file's digital service has an all-zero secret hash and the example hospital's
    # redirect URI: deploying it would register a client nobody owns.
    if grep -qE 'sha256:0{64}|dpi\.chu-exemple\.fr' "$PARAMETERS_FILE"; then
        die "$PARAMETERS_FILE contient encore le service numérique d'exemple (client_secret
« sha256:000…0 », https://dpi.chu-exemple.fr). Remplacez-le, dans le paramètre clients, par vos
services numériques (docs/deploy.md, section 3), puis relancez."
    fi
}

# ---------------------------------------------------------------------------------------------
# az with a time-out, the subscription, and readable errors for missing roles and permissions
# ---------------------------------------------------------------------------------------------

az_timed() {
    # az_timed <seconds> <az arguments...>
    local seconds="$1"
    shift
    # No standard input (az fails instead of prompting); the whole process group killed after the
    # time-out, exit status 124 as timeout(1).
    "$PYTHON" "$SCRIPT_DIR/run_with_timeout.py" "$seconds" az "$@"
}

explain_failure() {
    local log="$1" status="$2" seconds="$3"
    if [[ "$status" -eq 124 ]]; then
        say ""
        say "Délai dépassé : la commande az n'a pas abouti en $seconds s et a été interrompue. Vérifiez"
        say "dans le portail (groupe de ressources > Déploiements) où elle en était, puis relancez le script"
        say "(rejouable), au besoin avec un délai plus long (DEPLOY_TIMEOUT, PUBLISH_TIMEOUT, AZ_TIMEOUT)."
    fi
    if grep -qE 'Authorization_RequestDenied|Insufficient privileges' "$log"; then
        say ""
        say "Droits Entra ID insuffisants. La création de l'inscription d'application, de son principal de"
        say "service, du consentement administrateur, de l'identifiant fédéré et l'affectation des groupes"
        say "exigent le rôle Entra « Administrateur d'application » (Application Administrator) ou"
        say "« Administrateur d'application cloud » (Cloud Application Administrator), actif (PIM) au"
        say "moment du déploiement."
    fi
    if grep -qE 'AuthorizationFailed|does not have authorization to perform action|RoleAssignmentUpdateNotPermitted' "$log"; then
        say ""
        say "Droits Azure insuffisants sur le groupe de ressources « $RESOURCE_GROUP ». Il faut le rôle"
        say "Propriétaire (Owner), ou Contributeur + Administrateur de l'accès utilisateur (User Access"
        say "Administrator) ou Administrateur du contrôle d'accès en fonction du rôle (Role Based Access"
        say "Control Administrator) : le modèle attribue des rôles à l'identité managée."
    fi
    if grep -qE 'ForbiddenByRbac|Caller is not authorized to perform action on resource' "$log"; then
        say ""
        say "Key Vault refuse l'accès : le rôle temporaire Key Vault Secrets Officer de"
        say "${DEPLOYER_OBJECT_ID:-votre compte} peut mettre quelques minutes à se propager. Relancez le script."
    fi
    if grep -q 'MissingSubscriptionRegistration' "$log"; then
        say ""
        say "Un fournisseur de ressources n'est pas inscrit sur l'abonnement, par exemple :"
        say "  az provider register --namespace Microsoft.Web --wait"
    fi
    if grep -qE 'VaultAlreadyExists|ConflictError.*[Dd]eleted|soft.?deleted' "$log"; then
        say ""
        say "Un coffre Key Vault du même nom existe à l'état supprimé (suppression réversible, purge"
        say "protégée). Récupérez-le (az keyvault recover --name <nom>) ou changez environmentName."
    fi
    if grep -qE 'AADSTS|az login|Please run .az login' "$log"; then
        say ""
        say "Session Azure CLI expirée ou insuffisante : relancez az login."
    fi
}

run_az() {
    # run_az <seconds> <az arguments...>: az with a time-out, its errors explained on failure.
    local seconds="$1" log status=0
    shift
    log=$(mktemp)
    az_timed "$seconds" "$@" 2>"$log" || status=$?
    if [[ "$status" -ne 0 ]]; then
        cat "$log" >&2
        explain_failure "$log" "$status" "$seconds"
    fi
    rm -f -- "$log"
    return "$status"
}

arm() {
    # arm <seconds> <az arguments...>: an Azure Resource Manager command, in the chosen subscription.
    local seconds="$1"
    shift
    run_az "$seconds" "$@" ${SUB_ARGS[@]+"${SUB_ARGS[@]}"}
}

graph() {
    # graph <method> <url> [body] [extra az rest arguments...]: a Microsoft Graph v1.0 request.
    local method="$1" url="$2" body="${3:-}"
    shift 3 || shift $#
    if [[ -n "$body" ]]; then
        run_az "$AZ_TIMEOUT" rest --method "$method" --url "$url" \
            --headers "Content-Type=application/json" --body "$body" "$@"
    else
        run_az "$AZ_TIMEOUT" rest --method "$method" --url "$url" "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------

version_ge() {
    # true when version $1 >= version $2
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "Python introuvable ($PYTHON). Installez Python 3 ou passez --python."
    if [[ "${1:-}" == "with-cryptography" ]]; then
        "$PYTHON" -c 'import cryptography' 2>/dev/null \
            || die "le paquet Python « cryptography » manque pour $PYTHON (pip install cryptography, ou --python .venv/bin/python)."
    fi
}

check_session() {
    command -v az >/dev/null 2>&1 \
        || die "Azure CLI (az) introuvable. Installation : https://learn.microsoft.com/cli/azure/install-azure-cli"
    check_python
    local account subscription_name subscription_id
    account=$(az_timed "$AZ_TIMEOUT" account show ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} \
        --query '[[name, id, user.name, user.type]]' -o tsv 2>/dev/null) \
        || die "aucune session Azure CLI, ou abonnement « ${SUBSCRIPTION:-par défaut} » inaccessible : lancez d'abord az login."
    IFS=$'\t' read -r subscription_name subscription_id ACCOUNT_USER_NAME ACCOUNT_USER_TYPE <<<"$account"
    say "Compte et abonnement : $ACCOUNT_USER_NAME, $subscription_name ($subscription_id)"
}

check_prerequisites() {
    step "Vérification des prérequis"
    check_session
    local bicep_output bicep_version
    bicep_output=$(az_timed "$AZ_TIMEOUT" bicep version 2>&1) || die "Bicep CLI absent : lancez az bicep upgrade (ou az bicep install)."
    # "Bicep CLI version 0.36.1 (…)"; other lines may announce a newer release: ignore them.
    bicep_version=$(printf '%s\n' "$bicep_output" | grep -oE 'Bicep CLI version [0-9]+\.[0-9]+\.[0-9]+' \
        | grep -oE '[0-9]+\.[0-9]+\.[0-9]+$' | head -n 1 || true)
    [[ -n "$bicep_version" ]] || die "version de Bicep illisible (« $bicep_output ») : lancez az bicep upgrade."
    version_ge "$bicep_version" "$MIN_BICEP_VERSION" \
        || die "Bicep $bicep_version trop ancien : l'extension Microsoft Graph exige >= $MIN_BICEP_VERSION. Lancez az bicep upgrade."
    say "Bicep $bicep_version"

    if [[ "$WHAT_IF" -eq 0 ]]; then
        check_python with-cryptography
    fi
}

resolve_deployer() {
    if [[ -n "$DEPLOYER_OBJECT_ID" ]]; then
        DEPLOYER_TYPE="${DEPLOYER_TYPE:-User}"
        return
    fi
    if [[ "$ACCOUNT_USER_TYPE" == "servicePrincipal" ]]; then
        DEPLOYER_OBJECT_ID=$(run_az "$AZ_TIMEOUT" ad sp show --id "$ACCOUNT_USER_NAME" --query id -o tsv) \
            || die "object id du principal de service introuvable : passez --deployer-object-id."
        DEPLOYER_TYPE="${DEPLOYER_TYPE:-ServicePrincipal}"
    else
        DEPLOYER_OBJECT_ID=$(run_az "$AZ_TIMEOUT" ad signed-in-user show --query id -o tsv) \
            || die "object id de l'utilisateur connecté introuvable : passez --deployer-object-id."
        DEPLOYER_TYPE="${DEPLOYER_TYPE:-User}"
    fi
}

# ---------------------------------------------------------------------------------------------
# Deployment helpers
# ---------------------------------------------------------------------------------------------

record_query() {
    # One TSV row with every RECORD_FIELDS value; "-" for a missing one (tabs are IFS whitespace, so
    # `read` would merge an empty field with the next).
    local query="" field
    for field in "${RECORD_FIELDS[@]}"; do
        query+="${query:+, }properties.${field#*:}.value || '-'"
    done
    printf '[[%s]]' "$query"
}

parse_record() {
    # parse_record <row>: sets the RECORD_FIELDS variables.
    local values field index=0 value
    IFS=$'\t' read -r -a values <<<"$1"
    for field in "${RECORD_FIELDS[@]}"; do
        value="${values[$index]:--}"
        [[ "$value" != "-" ]] || value=""
        printf -v "${field%%:*}" '%s' "$value"
        index=$((index + 1))
    done
}

load_record() {
    # Reads this environment's deployment record; 1 when there is none yet.
    local row
    row=$(az_timed "$AZ_TIMEOUT" deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} --query "$(record_query)" -o tsv 2>/dev/null) || return 1
    parse_record "$row"
}

check_deployment_environment() {
    # A deployment record of that name made for another environment (a --name reused by mistake)
    # would hand this run another environment's vault and application.
    local recorded="${REC_ENVIRONMENT:-}"
    if [[ -n "$recorded" && "$recorded" != "$ENVIRONMENT" ]]; then
        die "le déploiement « $DEPLOYMENT_NAME » de $RESOURCE_GROUP a été fait pour l'environnement « $recorded »,
pas « $ENVIRONMENT » (environmentName de $PARAMETERS_FILE). Choisissez un autre --name, ou retirez
--name : le nom par défaut est psc-sans-couture-<environmentName>."
    fi
}

vault_secret_exists() {
    # Control-plane read (Owner/Contributor suffice): does the vault hold a secret of this name?
    az_timed "$AZ_TIMEOUT" resource show --resource-group "$RESOURCE_GROUP" --namespace Microsoft.KeyVault \
        --parent "vaults/$1" --resource-type secrets --name "$2" ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} \
        --query id -o tsv >/dev/null 2>&1
}

psc_uses_private_key_jwt() {
    # pscTokenAuthMethod of the parameter file (main.bicep's default: client_secret_basic).
    [[ "$(param_literal pscTokenAuthMethod)" == "private_key_jwt" ]]
}

ask_psc_secret_if_needed() {
    if [[ -n "${PSC_CLIENT_SECRET:-}" ]]; then
        if psc_uses_private_key_jwt; then
            die "pscTokenAuthMethod = 'private_key_jwt' : PSC_CLIENT_SECRET doit rester vide (le broker s'authentifie auprès de PSC avec sa clé de signature)."
        fi
        return 0
    fi
    if psc_uses_private_key_jwt; then
        say "PSC : authentification private_key_jwt avec la clé de signature du broker, aucun secret client."
        return
    fi
    # This environment's vault, read from this environment's deployment record (load_record).
    local vault="${OUT_VAULT:-}" name="${OUT_PSC_NAME:-}"
    if [[ -n "$vault" && -n "$name" ]] && vault_secret_exists "$vault" "$name"; then
        say "Secret client PSC déjà présent dans Key Vault ($vault/$name) : conservé."
        return
    fi
    if [[ "$WHAT_IF" -eq 1 ]]; then
        return
    fi
    if [[ -t 0 ]]; then
        local secret=""
        read -r -s -p "Secret client PSC (fourni par l'ANS avec le client id) : " secret
        printf '\n' >&2
        [[ -n "$secret" ]] || die "le secret client PSC est nécessaire au premier déploiement."
        PSC_CLIENT_SECRET="$secret"
    else
        die "premier déploiement de l'environnement « $ENVIRONMENT » ($DEPLOYMENT_NAME) : exportez PSC_CLIENT_SECRET (le secret client PSC fourni par l'ANS)."
    fi
}

grant_temporary_secrets_officer() {
    # grant_temporary_secrets_officer <vault resource id>: Key Vault Secrets Officer for the deployer,
    # on the vault (creating a secret needs a vault-scope role; a secret-scope one only applies to a
    # secret that exists: rbac-guide.md, "Secret scope role assignment"), deleted by
    # remove_temporary_role as soon as the key is written, and on any exit.
    local vault_id="$1" existing
    resolve_deployer
    existing=$(arm "$AZ_TIMEOUT" role assignment list --scope "$vault_id" --role "$SECRETS_OFFICER_ROLE" \
        --query "[?principalId=='$DEPLOYER_OBJECT_ID'].id | [0]" -o tsv) \
        || die "lecture des rôles du coffre impossible."
    if [[ -n "$existing" && "$existing" != "None" ]]; then
        say "ATTENTION : $DEPLOYER_OBJECT_ID détient déjà Key Vault Secrets Officer sur tout le coffre (attribution"
        say "permanente, laissée par une version antérieure de ce déploiement ou créée à la main). Le script"
        say "s'en sert sans la toucher ; retirez-la une fois la clé écrite (docs/deploy.md, section 6) :"
        say "    az role assignment delete --ids $existing"
        return
    fi
    TEMPORARY_ROLE_ID=$(arm "$AZ_TIMEOUT" role assignment create --assignee-object-id "$DEPLOYER_OBJECT_ID" \
        --assignee-principal-type "$DEPLOYER_TYPE" --role "$SECRETS_OFFICER_ROLE" --scope "$vault_id" \
        --description "PSC sans couture : temporaire, le temps que infra/deploy.sh écrive la première clé de signature" \
        --query id -o tsv) \
        || die "attribution temporaire de Key Vault Secrets Officer à $DEPLOYER_OBJECT_ID impossible."
    say "Key Vault Secrets Officer attribué TEMPORAIREMENT à $DEPLOYER_OBJECT_ID ($DEPLOYER_TYPE) sur le coffre."
}

remove_temporary_role() {
    [[ -n "$TEMPORARY_ROLE_ID" ]] || return 0
    local role_id="$TEMPORARY_ROLE_ID"
    TEMPORARY_ROLE_ID=""
    if run_az "$AZ_TIMEOUT" role assignment delete --ids "$role_id" ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} >/dev/null; then
        say "Rôle temporaire Key Vault Secrets Officer retiré."
    else
        say "ATTENTION : le rôle temporaire Key Vault Secrets Officer n'a pas pu être retiré ; retirez-le :"
        say "    az role assignment delete --ids $role_id"
    fi
}

bootstrap_signing_key() {
    local vault="$1" name="$2" vault_id="$3"
    if vault_secret_exists "$vault" "$name"; then
        say "Clé de signature déjà présente ($vault/$name) : inchangée (rotation : docs/deploy.md)."
        return
    fi
    step "Création de la première clé de signature ($vault/$name)"
    grant_temporary_secrets_officer "$vault_id"
    local key_file="$WORK_DIR/signing-key.json"
    (umask 077 && "$PYTHON" "$SCRIPT_DIR/signing_key.py" --output "$key_file") \
        || die "échec de la génération de la clé (infra/signing_key.py)."
    # The role may take a few minutes to propagate: retry on "Forbidden" only, fail at once on
    # anything else. Key Vault data-plane commands ignore --subscription (Azure/azure-cli#17581):
    # the vault is addressed by its name.
    local attempt log="$WORK_DIR/keyvault.log" status
    for attempt in 1 2 3 4 5 6 7 8 9 10 11 12; do
        status=0
        az_timed "$AZ_TIMEOUT" keyvault secret set --vault-name "$vault" --name "$name" --file "$key_file" \
            --encoding utf-8 --content-type application/jwk+json --query id -o tsv >/dev/null 2>"$log" || status=$?
        if [[ "$status" -eq 0 ]]; then
            rm -f -- "$key_file" "$log"
            say "Première version de la clé de signature écrite."
            remove_temporary_role
            return
        fi
        if ! grep -qE 'Forbidden|not authorized' "$log" || [[ "$attempt" -eq 12 ]]; then
            rm -f -- "$key_file"
            cat "$log" >&2
            explain_failure "$log" "$status" "$AZ_TIMEOUT"
            die "impossible d'écrire la clé de signature dans $vault (rôle Key Vault Secrets Officer de $DEPLOYER_OBJECT_ID sur le coffre ?). Relancez le script une fois le problème corrigé."
        fi
        say "Key Vault pas encore accessible (tentative $attempt/12, propagation des rôles) ; nouvel essai dans 20 s…"
        sleep 20
    done
}

build_package() {
    # Zip the app, leaving out what .funcignore lists (gitignore-style patterns) and, always,
    # local secrets and caches. Python's zipfile: no dependency on the zip command.
    local source="$1" output="$2"
    [[ -f "$source/host.json" ]] || die "$source/host.json introuvable : --source doit être la racine de l'application."
    [[ -f "$source/requirements.txt" ]] || die "$source/requirements.txt introuvable."
    [[ -f "$source/function_app.py" ]] || die "$source/function_app.py introuvable : rien à publier."
    check_python
    "$PYTHON" - "$source" "$output" <<'PY'
import fnmatch
import os
import sys
import zipfile
from pathlib import Path

source = Path(sys.argv[1]).resolve()
output = Path(sys.argv[2]).resolve()
rules = []


def add_rule(line):
    line = line.strip()
    if not line or line.startswith("#"):
        return
    negate = line.startswith("!")
    line = line[1:] if negate else line
    directory_only = line.endswith("/")
    line = line.strip("/")
    if line.startswith("**/"):
        line = line[3:]
    rules.append((negate, directory_only, "/" in line, line))


ignore_file = source / ".funcignore"
if ignore_file.is_file():
    for raw in ignore_file.read_text(encoding="utf-8").splitlines():
        add_rule(raw)
# Never shipped, whatever .funcignore says: local secrets, caches, version control.
for pattern in (".git/", ".venv/", ".data/", "__pycache__/", "*.pyc", "local.settings.json", ".funcignore"):
    add_rule(pattern)


def ignored(relative, is_dir):
    verdict = False
    name = relative.rsplit("/", 1)[-1]
    for negate, directory_only, anchored, pattern in rules:
        if directory_only and not is_dir:
            continue
        if fnmatch.fnmatchcase(relative if anchored else name, pattern):
            verdict = not negate
    return verdict


count = 0
output.parent.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for directory, subdirectories, files in os.walk(source):
        base = Path(directory).relative_to(source).as_posix()
        prefix = "" if base == "." else base + "/"
        subdirectories[:] = sorted(d for d in subdirectories if not ignored(prefix + d, True))
        for name in sorted(files):
            path = Path(directory) / name
            if path.resolve() == output or ignored(prefix + name, False):
                continue
            archive.write(path, prefix + name)
            count += 1
print(f"{output}: {count} files", file=sys.stderr)
PY
}


publish_code() {
    local app="$1"
    step "Publication du code sur $app (build distant)"
    local package="$WORK_DIR/app.zip"
    build_package "$SOURCE_DIR" "$package"
    arm "$PUBLISH_TIMEOUT" functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" \
        --name "$app" --src "$package" --build-remote true >/dev/null \
        || die "échec de la publication du code sur $app."
    say "Code publié."
}

# ---------------------------------------------------------------------------------------------
# Groups of professionals
# ---------------------------------------------------------------------------------------------

required_contexts() {
    # The authentication contexts the broker requires (entraRequiredAcrs, main.bicep default c1), one
    # per line; "none" when the check is off.
    printf '%s\n' "${REC_ACRS:-c1}" | tr ',' '\n' | tr -d ' '
}

contexts_protected() {
    # 0 when every context the broker requires is bound to an enabled policy with the expected
    # strength (infra/conditional-access.sh --check, read-only); says why not otherwise.
    local context
    while read -r context; do
        [[ -n "$context" ]] || continue
        if [[ "$context" == "none" ]]; then
            say "entraRequiredAcrs = 'none' : le broker ne vérifie aucun contexte d'authentification, donc rien ne"
            say "garantit une authentification forte. Le script n'affecte pas de groupe dans ce cas ; affectez-les"
            say "vous-même (Entra ID > Applications d'entreprise > Utilisateurs et groupes) si vous l'assumez."
            return 1
        fi
        say "Vérification de la protection du contexte $context (conditional-access.sh --check) :"
        AZ_TIMEOUT="$AZ_TIMEOUT" PYTHON="$PYTHON" "$SCRIPT_DIR/conditional-access.sh" --check --auth-context "$context" \
            ${SUB_ARGS[@]+"${SUB_ARGS[@]}"} </dev/null >&2 || return 1
    done < <(required_contexts)
}

assign_group() {
    # assign_group <service principal id> <group object id>: idempotent app role assignment.
    local sp_id="$1" group="$2" group_name existing
    group_name=$(graph GET "$GRAPH/groups/$group?\$select=id,displayName" "" --query displayName -o tsv) \
        || die "groupe $group introuvable dans Entra ID (object id du groupe attendu)."
    existing=$(graph GET "$GRAPH/servicePrincipals/$sp_id/appRoleAssignedTo" "" \
        --query "value[?principalId=='$group'].id | [0]" -o tsv) \
        || die "lecture des affectations de l'application d'entreprise impossible."
    if [[ -n "$existing" && "$existing" != "None" ]]; then
        say "Groupe « $group_name » ($group) : déjà affecté."
        return
    fi
    graph POST "$GRAPH/servicePrincipals/$sp_id/appRoleAssignedTo" \
        "{\"principalId\":\"$group\",\"resourceId\":\"$sp_id\",\"appRoleId\":\"$DEFAULT_APP_ROLE_ID\"}" \
        --query id -o tsv >/dev/null \
        || die "affectation du groupe « $group_name » ($group) impossible."
    say "Groupe « $group_name » ($group) : affecté."
}

assign_groups() {
    # Sets GROUPS_STATUS: assigned | pending (protection not verified) | none (no --group).
    GROUPS_STATUS="none"
    [[ ${#GROUP_IDS[@]} -gt 0 ]] || return 0
    step "Affectation des groupes de professionnels à l'application d'entreprise"
    local sp_id="$OUT_SP_ID" group
    is_guid "$sp_id" || die "sortie entraServicePrincipalId absente du déploiement $DEPLOYMENT_NAME : déployez d'abord (sans --assign-only)."
    if ! contexts_protected; then
        GROUPS_STATUS="pending"
        say "Groupes NON affectés : le contexte exigé par le broker n'est pas protégé par une stratégie active."
        return 0
    fi
    for group in "${GROUP_IDS[@]}"; do
        assign_group "$sp_id" "$group"
    done
    GROUPS_STATUS="assigned"
}

# ---------------------------------------------------------------------------------------------
# What is left to do
# ---------------------------------------------------------------------------------------------

rerun_command() {
    # The command line of this deployment, with the options that name it.
    local command="infra/deploy.sh --resource-group $RESOURCE_GROUP --parameters $PARAMETERS_FILE"
    [[ -z "$SUBSCRIPTION" ]] || command+=" --subscription $SUBSCRIPTION"
    [[ "$DEPLOYMENT_NAME" == "psc-sans-couture-$ENVIRONMENT" ]] || command+=" --name $DEPLOYMENT_NAME"
    printf '%s' "$command"
}

groups_argument() {
    local out="" group
    for group in ${GROUP_IDS[@]+"${GROUP_IDS[@]}"}; do
        out+=" --group $group"
    done
    printf '%s' "${out:- --group <object id du groupe des professionnels>}"
}

psc_jwks_line() {
    # With private_key_jwt, ANS registers the broker's JWKS URL as the client's keys (docs/deploy.md §10).
    psc_uses_private_key_jwt || return 0
    printf '\n     et, méthode private_key_jwt, l\x27URL des clés publiques du client (JWKS) :\n         %s/jwks' "$1"
}

print_next_steps() {
    local issuer="$OUT_ISSUER" psc_redirect="$OUT_PSC_REDIRECT" client_id="$OUT_CLIENT_ID" context
    local subscription_option=""
    context=$(required_contexts)
    context="${context%%$'\n'*}"
    [[ "$context" != "none" ]] || context="c1"
    [[ -z "$SUBSCRIPTION" ]] || subscription_option=" --subscription $SUBSCRIPTION"
    cat <<EOF

Déploiement terminé ($DEPLOYMENT_NAME, environnement $ENVIRONMENT).

  Émetteur (issuer) du broker      : $issuer
  Découverte OpenID Connect        : $issuer/.well-known/openid-configuration
  Application Entra (client id)    : $client_id

Personne ne peut se connecter avant que les stratégies d'accès conditionnel soient ACTIVES :
l'application d'entreprise exige une affectation, et ce script n'y affecte les groupes de
professionnels qu'une fois le contexte d'authentification $context protégé par une stratégie active
(sans elle, Entra délivre $context sans rien exiger et le contrôle acrs du broker ne prouve rien).
EOF
    if [[ "$GROUPS_STATUS" == "assigned" ]]; then
        cat <<EOF
Groupes affectés :$(groups_argument | sed 's/ --group / /g') (contexte $context vérifié protégé).

Étapes suivantes, dans cet ordre :
  1. Si ce n'est fait, faire enregistrer auprès de l'ANS (Pro Santé Connect), pour le client id PSC
     du broker, l'URI de redirection :
         $psc_redirect$(psc_jwks_line "$issuer")
  2. Vérifier l'état du service :
         curl -s $issuer/health
  3. En dernier, vérifier que le contexte est protégé par une stratégie active :
         infra/conditional-access.sh --check --auth-context $context$subscription_option
EOF
        return
    fi
    if [[ "$GROUPS_STATUS" == "pending" ]]; then
        printf '%s\n' "Groupes demandés (--group) NON affectés : $context n'est pas encore protégé."
    else
        printf '%s\n' "Aucun groupe demandé (--group) : aucune affectation faite par ce lancement."
    fi
    cat <<EOF

Étapes suivantes, dans cet ordre :
  1. Faire enregistrer auprès de l'ANS (Pro Santé Connect), pour le client id PSC du broker,
     l'URI de redirection :
         $psc_redirect$(psc_jwks_line "$issuer")
  2. Créer le contexte d'authentification $context et les deux stratégies (application du broker,
     contexte $context), en mode « rapport seulement » à leur création ; excluez le groupe des comptes
     d'urgence :
         infra/conditional-access.sh --app-id $client_id --auth-context $context --exclude-group <groupe des comptes d'urgence>$subscription_option
  3. Les activer (après lecture des journaux de connexion en mode rapport seulement) :
         infra/conditional-access.sh --app-id $client_id --auth-context $context --exclude-group <groupe des comptes d'urgence> --enable$subscription_option
  4. Affecter les groupes de professionnels (le script vérifie d'abord que $context est protégé) :
         $(rerun_command) --assign-only$(groups_argument)
  5. Vérifier l'état du service :
         curl -s $issuer/health
  6. En dernier, vérifier que le contexte est protégé par une stratégie active :
         infra/conditional-access.sh --check --auth-context $context$subscription_option
EOF
}

report_assignments() {
    # Without --group: tell how many principals the enterprise application has (informative only).
    local sp_id="$OUT_SP_ID" count
    is_guid "$sp_id" || return 0
    count=$(az_timed "$AZ_TIMEOUT" rest --method GET --url "$GRAPH/servicePrincipals/$sp_id/appRoleAssignedTo" \
        --query "length(value)" -o tsv 2>/dev/null) || return 0
    say "Affectations de l'application d'entreprise : $count."
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

validate_arguments() {
    [[ -n "$RESOURCE_GROUP" ]] || die "--resource-group est obligatoire (voir --help)."
    [[ -n "$PARAMETERS_FILE" ]] || die "--parameters est obligatoire (voir --help)."
    [[ -f "$PARAMETERS_FILE" ]] || die "fichier de paramètres introuvable : $PARAMETERS_FILE"
    [[ "$PARAMETERS_FILE" == *.bicepparam ]] || die "--parameters attend un fichier .bicepparam (using './main.bicep')."
    case "$DEPLOYER_TYPE" in
        ""|User|Group|ServicePrincipal) ;;
        *) die "--deployer-type : User, Group ou ServicePrincipal." ;;
    esac
    local group
    for group in ${GROUP_IDS[@]+"${GROUP_IDS[@]}"}; do
        is_guid "$group" || die "--group attend l'object id (GUID) d'un groupe Entra : $group"
    done
    if [[ "$ASSIGN_ONLY" -eq 1 ]]; then
        [[ ${#GROUP_IDS[@]} -gt 0 ]] || die "--assign-only attend au moins un --group <object id>."
        [[ "$WHAT_IF" -eq 0 ]] || die "--assign-only et --what-if ne vont pas ensemble."
    fi
    local seconds
    for seconds in "$DEPLOY_TIMEOUT" "$PUBLISH_TIMEOUT" "$AZ_TIMEOUT"; do
        [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "DEPLOY_TIMEOUT, PUBLISH_TIMEOUT et AZ_TIMEOUT sont des nombres de secondes."
    done
    read_environment
    refuse_example_parameters
    if [[ -n "$SUBSCRIPTION" ]]; then SUB_ARGS=(--subscription "$SUBSCRIPTION"); fi
}

assign_only() {
    step "Affectation seule (--assign-only), déploiement $DEPLOYMENT_NAME"
    check_session
    load_record || die "déploiement $DEPLOYMENT_NAME introuvable dans $RESOURCE_GROUP : déployez d'abord (sans --assign-only)."
    check_deployment_environment
    assign_groups
    if [[ "$GROUPS_STATUS" != "assigned" ]]; then
        die "aucun groupe affecté : activez d'abord les stratégies (infra/conditional-access.sh … --enable), puis relancez."
    fi
    say ""
    local context
    context=$(required_contexts)
    say "Dernière étape, vérifiez que le contexte est protégé :"
    say "    infra/conditional-access.sh --check --auth-context ${context%%$'\n'*}${SUBSCRIPTION:+ --subscription $SUBSCRIPTION}"
}

main() {
    parse_args "$@"
    WORK_DIR=$(mktemp -d)

    if [[ -n "$PACKAGE_ONLY" ]]; then
        build_package "$SOURCE_DIR" "$PACKAGE_ONLY"
        return
    fi

    validate_arguments
    if [[ "$ASSIGN_ONLY" -eq 1 ]]; then
        assign_only
        return
    fi

    check_prerequisites
    say "Déploiement $DEPLOYMENT_NAME (environnement $ENVIRONMENT)"

    step "Groupe de ressources $RESOURCE_GROUP"
    if [[ "$(arm "$AZ_TIMEOUT" group exists --name "$RESOURCE_GROUP")" == "true" ]]; then
        say "Existe déjà."
        if load_record; then
            check_deployment_environment
        fi
    elif [[ "$WHAT_IF" -eq 1 ]]; then
        die "le groupe de ressources $RESOURCE_GROUP n'existe pas ; what-if en a besoin. Créez-le (az group create --name $RESOURCE_GROUP --location $LOCATION) ou lancez le déploiement sans --what-if."
    else
        arm "$AZ_TIMEOUT" group create --name "$RESOURCE_GROUP" --location "$LOCATION" \
            --tags application=psc-sans-couture >/dev/null \
            || die "impossible de créer le groupe de ressources (rôle Contributeur sur l'abonnement requis)."
        say "Créé dans $LOCATION."
    fi

    ask_psc_secret_if_needed
    # main.bicepparam reads it with readEnvironmentVariable(): never written to a file.
    export PSC_CLIENT_SECRET="${PSC_CLIENT_SECRET:-}"

    if [[ "$WHAT_IF" -eq 1 ]]; then
        step "Aperçu (what-if) du déploiement $DEPLOYMENT_NAME"
        arm "$DEPLOY_TIMEOUT" deployment group what-if --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
            --parameters "$PARAMETERS_FILE" || die "what-if en échec."
        say ""
        say "Aperçu seulement : rien n'a été modifié. Il ne montre pas l'application Entra et son principal de"
        say "service (extension Microsoft Graph), ni la clé de signature, le code, les groupes ou l'accès"
        say "conditionnel (docs/deploy.md, « Ce que --what-if ne montre pas »)."
        return
    fi

    step "Déploiement $DEPLOYMENT_NAME (Bicep : infrastructure et application Entra ; 5 à 15 min)"
    local record
    record=$(arm "$DEPLOY_TIMEOUT" deployment group create --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        --parameters "$PARAMETERS_FILE" --query "$(record_query)" -o tsv) \
        || die "le déploiement a échoué (détails ci-dessus et dans le portail : groupe de ressources > Déploiements)."
    parse_record "$record"
    say "Infrastructure déployée."
    [[ -n "$OUT_APP" && -n "$OUT_VAULT" && -n "$OUT_VAULT_ID" && -n "$OUT_KEY_NAME" ]] \
        || die "sorties du déploiement $DEPLOYMENT_NAME illisibles."

    bootstrap_signing_key "$OUT_VAULT" "$OUT_KEY_NAME" "$OUT_VAULT_ID"

    if [[ "$SKIP_CODE" -eq 1 ]]; then
        say "Publication du code sautée (--skip-code)."
    else
        publish_code "$OUT_APP"
    fi

    assign_groups
    [[ ${#GROUP_IDS[@]} -gt 0 ]] || report_assignments
    print_next_steps
}

main "$@"
