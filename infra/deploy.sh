#!/usr/bin/env bash
# Deploy the PSC sans couture broker into an Azure resource group (docs/deploy.md):
#   1. check the prerequisites (az CLI, signed-in account, Bicep >= 0.36.1, Python + cryptography);
#   2. create the resource group if needed;
#   3. az deployment group create with the .bicepparam file (infra/bicep/main.bicep);
#   4. write the first signing-key version to Key Vault if the secret does not exist yet;
#   5. build the code package (respecting .funcignore) and publish it (remote build);
#   6. print what is left to do by hand (PSC redirect URI, Conditional Access).
# --what-if only previews the deployment. Messages are in French: the audience is the hospital's
# (ES) administrators.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT
readonly MIN_BICEP_VERSION="0.36.1"

RESOURCE_GROUP=""
PARAMETERS_FILE=""
LOCATION="francecentral"
SUBSCRIPTION=""
DEPLOYMENT_NAME="psc-sans-couture"
WHAT_IF=0
SKIP_CODE=0
PACKAGE_ONLY=""
SOURCE_DIR="$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
DEPLOYER_OBJECT_ID=""
DEPLOYER_TYPE=""
WORK_DIR=""

usage() {
    cat <<EOF
Usage : infra/deploy.sh --resource-group <nom> --parameters <fichier.bicepparam> [options]

Déploie le broker PSC sans couture : infrastructure (Bicep), première clé de signature,
code de la Function App. Prérequis : az login, puis az bicep upgrade (Bicep >= $MIN_BICEP_VERSION).

Options :
  -g, --resource-group <nom>     Groupe de ressources cible (créé s'il n'existe pas). Obligatoire.
  -p, --parameters <fichier>     Fichier de paramètres .bicepparam (ex. infra/bicep/main.bicepparam).
                                 Obligatoire.
  -l, --location <région>        Région du groupe de ressources s'il faut le créer
                                 (défaut : $LOCATION).
  -s, --subscription <id|nom>    Abonnement Azure à utiliser (défaut : celui de az account show).
  -n, --name <nom>               Nom du déploiement ARM (défaut : $DEPLOYMENT_NAME).
      --what-if                  Aperçu seulement : az deployment group what-if, aucune modification.
      --skip-code                Infrastructure et clé de signature seulement, sans publier le code.
      --package-only <fichier.zip>
                                 Construit seulement le paquet du code (selon .funcignore) et s'arrête ;
                                 n'appelle pas Azure.
      --source <dossier>         Racine du code à publier (défaut : la racine du dépôt).
      --deployer-object-id <id>  Object id qui reçoit Key Vault Secrets Officer pour écrire la clé de
                                 signature (défaut : l'utilisateur ou le principal de service connecté).
      --deployer-type <type>     User, Group ou ServicePrincipal (défaut : déduit du compte connecté).
      --python <chemin>          Interpréteur Python avec le paquet cryptography (défaut : \$PYTHON ou
                                 python3).
  -h, --help                     Affiche cette aide.

Variables d'environnement :
  PSC_CLIENT_SECRET   Secret client PSC fourni par l'ANS. Demandé au premier déploiement s'il n'est
                      pas encore dans Key Vault ; vide ensuite = conserver le secret en place.

Exemple :
  az bicep upgrade
  infra/deploy.sh --resource-group rg-psc-sans-couture --parameters infra/bicep/main.bicepparam
EOF
}

say() { printf '%s\n' "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf 'Erreur : %s\n' "$*" >&2
    exit 1
}

cleanup() {
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

# ---------------------------------------------------------------------------------------------
# az with readable errors for missing roles and permissions
# ---------------------------------------------------------------------------------------------

explain_failure() {
    local log="$1"
    if grep -qE 'Authorization_RequestDenied|Insufficient privileges' "$log"; then
        say ""
        say "Droits Entra ID insuffisants. La création de l'inscription d'application, de son principal de"
        say "service, du consentement administrateur et de l'identifiant fédéré exige le rôle Entra"
        say "« Administrateur d'application » (Application Administrator) ou « Administrateur d'application"
        say "cloud » (Cloud Application Administrator), actif (PIM) au moment du déploiement."
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
        say "Key Vault refuse l'accès : le rôle Key Vault Secrets Officer attribué par le déploiement à"
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
    local log status=0
    log=$(mktemp)
    az "$@" 2>"$log" || status=$?
    if [[ "$status" -ne 0 ]]; then
        cat "$log" >&2
        explain_failure "$log"
    fi
    rm -f -- "$log"
    return "$status"
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

check_prerequisites() {
    step "Vérification des prérequis"
    command -v az >/dev/null 2>&1 \
        || die "Azure CLI (az) introuvable. Installation : https://learn.microsoft.com/cli/azure/install-azure-cli"
    if [[ -n "$SUBSCRIPTION" ]]; then
        run_az account set --subscription "$SUBSCRIPTION" >/dev/null \
            || die "impossible de sélectionner l'abonnement « $SUBSCRIPTION »."
    fi
    local account
    account=$(az account show --query '[name, id, user.name]' -o tsv 2>/dev/null) \
        || die "aucune session Azure CLI : lancez d'abord az login."
    say "Compte et abonnement : $(printf '%s' "$account" | tr '\n\t' '  ')"

    local bicep_output bicep_version
    bicep_output=$(az bicep version 2>&1) || die "Bicep CLI absent : lancez az bicep upgrade (ou az bicep install)."
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
    local user_type
    user_type=$(az account show --query user.type -o tsv)
    if [[ "$user_type" == "servicePrincipal" ]]; then
        local sp_app_id
        sp_app_id=$(az account show --query user.name -o tsv)
        DEPLOYER_OBJECT_ID=$(run_az ad sp show --id "$sp_app_id" --query id -o tsv) \
            || die "object id du principal de service introuvable : passez --deployer-object-id."
        DEPLOYER_TYPE="${DEPLOYER_TYPE:-ServicePrincipal}"
    else
        DEPLOYER_OBJECT_ID=$(run_az ad signed-in-user show --query id -o tsv) \
            || die "object id de l'utilisateur connecté introuvable : passez --deployer-object-id."
        DEPLOYER_TYPE="${DEPLOYER_TYPE:-User}"
    fi
}

# ---------------------------------------------------------------------------------------------
# Deployment helpers
# ---------------------------------------------------------------------------------------------

deployment_output() {
    az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        --query "properties.outputs.$1.value" -o tsv 2>/dev/null
}

vault_secret_exists() {
    # Control-plane read (Owner/Contributor suffice): does the vault hold a secret of this name?
    az resource show --resource-group "$RESOURCE_GROUP" --namespace Microsoft.KeyVault \
        --parent "vaults/$1" --resource-type secrets --name "$2" --query id -o tsv >/dev/null 2>&1
}

ask_psc_secret_if_needed() {
    if [[ -n "${PSC_CLIENT_SECRET:-}" ]]; then
        return
    fi
    local vault name
    vault=$(deployment_output keyVaultName || true)
    name=$(deployment_output pscCredentialName || true)
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
        die "premier déploiement : exportez PSC_CLIENT_SECRET (le secret client PSC fourni par l'ANS)."
    fi
}

bootstrap_signing_key() {
    local vault="$1" name="$2"
    if vault_secret_exists "$vault" "$name"; then
        say "Clé de signature déjà présente ($vault/$name) : inchangée (rotation : docs/deploy.md)."
        return
    fi
    step "Création de la première clé de signature ($vault/$name)"
    local key_file="$WORK_DIR/signing-key.json"
    (umask 077 && "$PYTHON" "$SCRIPT_DIR/signing_key.py" --output "$key_file") \
        || die "échec de la génération de la clé (infra/signing_key.py)."
    # The Secrets Officer role given by the deployment may take a few minutes to propagate:
    # retry on "Forbidden" only, fail at once on anything else.
    local attempt log="$WORK_DIR/keyvault.log"
    for attempt in 1 2 3 4 5 6 7 8 9 10 11 12; do
        if az keyvault secret set --vault-name "$vault" --name "$name" --file "$key_file" \
            --encoding utf-8 --content-type application/jwk+json --query id -o tsv >/dev/null 2>"$log"; then
            rm -f -- "$key_file" "$log"
            say "Première version de la clé de signature écrite."
            return
        fi
        if ! grep -qE 'Forbidden|not authorized' "$log" || [[ "$attempt" -eq 12 ]]; then
            rm -f -- "$key_file"
            cat "$log" >&2
            explain_failure "$log"
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
    run_az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$app" \
        --src "$package" --build-remote true >/dev/null \
        || die "échec de la publication du code sur $app."
    say "Code publié."
}

print_next_steps() {
    local issuer psc_redirect client_id
    issuer=$(deployment_output issuer)
    psc_redirect=$(deployment_output pscRedirectUri)
    client_id=$(deployment_output entraClientId)
    cat <<EOF

Déploiement terminé.

  Émetteur (issuer) du broker      : $issuer
  Découverte OpenID Connect        : $issuer/.well-known/openid-configuration
  Application Entra (client id)    : $client_id

Étapes suivantes :
  1. Faire enregistrer auprès de l'ANS (Pro Santé Connect), pour le client id PSC du broker,
     l'URI de redirection :
         $psc_redirect
  2. Créer le contexte d'authentification c1, que le broker exige dans chaque jeton Entra
     (paramètre entraRequiredAcrs ; passez sa valeur à --auth-context si vous l'avez changée), et
     les deux stratégies d'accès conditionnel (application du broker et contexte c1), d'abord en
     mode rapport seulement :
         infra/conditional-access.sh --app-id $client_id --auth-context c1
     puis, après vérification des journaux de connexion :
         infra/conditional-access.sh --app-id $client_id --auth-context c1 --enable
     Sans stratégie liée au contexte, Entra émet quand même c1 : ne sautez pas cette étape.
  3. Vérifier l'état du service :
         curl -s $issuer/health
EOF
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    WORK_DIR=$(mktemp -d)

    if [[ -n "$PACKAGE_ONLY" ]]; then
        build_package "$SOURCE_DIR" "$PACKAGE_ONLY"
        return
    fi

    [[ -n "$RESOURCE_GROUP" ]] || die "--resource-group est obligatoire (voir --help)."
    [[ -n "$PARAMETERS_FILE" ]] || die "--parameters est obligatoire (voir --help)."
    [[ -f "$PARAMETERS_FILE" ]] || die "fichier de paramètres introuvable : $PARAMETERS_FILE"
    [[ "$PARAMETERS_FILE" == *.bicepparam ]] || die "--parameters attend un fichier .bicepparam (using './main.bicep')."
    case "$DEPLOYER_TYPE" in
        ""|User|Group|ServicePrincipal) ;;
        *) die "--deployer-type : User, Group ou ServicePrincipal." ;;
    esac

    check_prerequisites
    resolve_deployer
    say "Key Vault Secrets Officer pour : $DEPLOYER_OBJECT_ID ($DEPLOYER_TYPE)"

    step "Groupe de ressources $RESOURCE_GROUP"
    if [[ "$(az group exists --name "$RESOURCE_GROUP")" == "true" ]]; then
        say "Existe déjà."
    elif [[ "$WHAT_IF" -eq 1 ]]; then
        die "le groupe de ressources $RESOURCE_GROUP n'existe pas ; what-if en a besoin. Créez-le (az group create --name $RESOURCE_GROUP --location $LOCATION) ou lancez le déploiement sans --what-if."
    else
        run_az group create --name "$RESOURCE_GROUP" --location "$LOCATION" \
            --tags application=psc-sans-couture >/dev/null \
            || die "impossible de créer le groupe de ressources (rôle Contributeur sur l'abonnement requis)."
        say "Créé dans $LOCATION."
    fi

    ask_psc_secret_if_needed
    # main.bicepparam reads these with readEnvironmentVariable(): never written to a file.
    export PSC_CLIENT_SECRET="${PSC_CLIENT_SECRET:-}"
    export DEPLOYER_PRINCIPAL_ID="$DEPLOYER_OBJECT_ID"
    export DEPLOYER_PRINCIPAL_TYPE="$DEPLOYER_TYPE"

    if [[ "$WHAT_IF" -eq 1 ]]; then
        step "Aperçu (what-if) du déploiement $DEPLOYMENT_NAME"
        run_az deployment group what-if --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
            --parameters "$PARAMETERS_FILE" || die "what-if en échec."
        say ""
        say "Aperçu seulement : rien n'a été modifié."
        return
    fi

    step "Déploiement $DEPLOYMENT_NAME (Bicep : infrastructure et application Entra ; 5 à 15 min)"
    run_az deployment group create --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
        --parameters "$PARAMETERS_FILE" --query properties.provisioningState -o tsv >/dev/null \
        || die "le déploiement a échoué (détails ci-dessus et dans le portail : groupe de ressources > Déploiements)."
    say "Infrastructure déployée."

    local app vault key_name
    app=$(deployment_output functionAppName)
    vault=$(deployment_output keyVaultName)
    key_name=$(deployment_output signingKeyName)
    [[ -n "$app" && -n "$vault" && -n "$key_name" ]] || die "sorties du déploiement $DEPLOYMENT_NAME illisibles."

    bootstrap_signing_key "$vault" "$key_name"

    if [[ "$SKIP_CODE" -eq 1 ]]; then
        say "Publication du code sautée (--skip-code)."
    else
        publish_code "$app"
    fi

    print_next_steps
}

main "$@"
