#!/bin/sh
# A CI job's view of flotilla's exit codes (docs/cli.md, "Exit codes"):
# prepares repositories with git and checks that `validate`, `plan --offline
# --detailed-exitcode`, an online plan with an unreachable node and typo'd
# flags each exit with the code the table documents. No node is needed: the
# only node ever contacted is 127.0.0.1:1, which refuses at once.
#
# Usage: ci-exit-codes.sh PATH-TO-FLOTILLA. Prints one line per check; exits
# 1 when any code differs from the table.
set -u
flotilla=${1:?usage: $0 PATH-TO-FLOTILLA}
case $flotilla in
/*) ;;
*) flotilla=$(pwd)/$flotilla ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# The documented table.
OK=0 FAILURE=1 CHANGES=2 UNKNOWN=3 UNSCHEDULABLE=4 USAGE=64

# A git without the user's configuration, with a fixed identity.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=CI GIT_AUTHOR_EMAIL=ci@example.invalid
export GIT_COMMITTER_NAME=CI GIT_COMMITTER_EMAIL=ci@example.invalid
unset FLOTILLA_REPO FLOTILLA_LOG

# Node n1 declares its capacity, so an offline plan can schedule on it.
node() {
    cat <<YAML
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: n1
spec:
  address: 127.0.0.1
  port: 1
  capacity:
    cpu: '4'
    memory: 8Gi
YAML
}

# web REPLICAS MEMORY [FIELD]: a Deployment; FIELD replaces `replicas`.
web() {
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  ${3:-replicas}: $1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: flotilla-test:1
          resources:
            requests: {cpu: 100m, memory: $2}
YAML
}

# repo NAME: a repository committing what the commands on stdin write.
repo() {
    dir="$work/$1"
    mkdir -p "$dir/nodes" "$dir/apps"
    git -C "$dir" init -q -b main
    (cd "$dir" && sh)
    git -C "$dir" add -A
    git -C "$dir" commit -q -m "$1"
}

# check EXPECTED DESCRIPTION REPO ARGS...: runs flotilla in REPO.
check() {
    expected=$1 description=$2 dir="$work/$3"
    shift 3
    (cd "$dir" && "$flotilla" "$@") >"$work/out" 2>&1
    code=$?
    if [ "$code" -eq "$expected" ]; then
        echo "ok    $code  $description: flotilla $*"
    else
        echo "FAIL  $code  $description: flotilla $* (expected $expected)"
        sed 's/^/      | /' "$work/out"
        failures=$((failures + 1))
    fi
}

node >"$work/node.yaml"
web 2 1Gi >"$work/web.yaml"
web 3 3Gi >"$work/big.yaml"
web 2 1Gi replica >"$work/typo.yaml"

repo valid <<SH
cp "$work/node.yaml" nodes/n1.yaml; cp "$work/web.yaml" apps/web.yaml
SH
repo invalid <<SH
cp "$work/node.yaml" nodes/n1.yaml; cp "$work/typo.yaml" apps/web.yaml
SH
repo unschedulable <<SH
cp "$work/node.yaml" nodes/n1.yaml; cp "$work/big.yaml" apps/web.yaml
SH
repo empty <<SH
cp "$work/node.yaml" nodes/n1.yaml
SH

check $OK "valid manifests" valid validate
check $FAILURE "invalid manifests" invalid validate
check $OK "valid, though one replica fits nowhere" unschedulable validate

check $CHANGES "changes" valid plan --offline --detailed-exitcode
check $OK "changes, without --detailed-exitcode" valid plan --offline
check $FAILURE "invalid manifests" invalid plan --offline --detailed-exitcode
check $UNSCHEDULABLE "a replica fits on no node" unschedulable plan --offline --detailed-exitcode
check $OK "no workload declared" empty plan --offline --detailed-exitcode
check $UNKNOWN "node unreachable, replicas held" valid plan --detailed-exitcode --connect-timeout 3s
check $UNKNOWN "node unreachable, nothing else to do" empty plan --detailed-exitcode --connect-timeout 3s

check $USAGE "a typo'd flag" valid plan --ofline --detailed-exitcode
check $USAGE "a typo'd flag" valid validate --working-tre
check $USAGE "an unknown command" valid plna
check $USAGE "a bad duration" valid plan --connect-timeout 5x
check $USAGE "a bad value" valid plan --offline --output yaml
check $USAGE "no command" valid
check $OK "help" valid plan --help
check $OK "version" valid --version

if [ "$failures" -gt 0 ]; then
    echo "$failures exit code(s) differ from the table in docs/cli.md"
    exit 1
fi
echo "every exit code matches the table in docs/cli.md"
