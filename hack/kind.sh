#!/usr/bin/env bash
# The kind demo, one step at a time: up, load, deploy, demo (the Makefile's kind-* targets).
# deploy and demo are also run by the packaging tests (hack/packaging) against envtest's API
# server, with KUBE_CONTEXT naming its context and KIND_WAIT=false (no kubelet runs there), so
# the README's install path is the tested one.
#
# Environment: KIND, HELM, KUBECTL (binaries; the Makefile passes its cached ones), KIND_CLUSTER
# (default authmesh), KUBE_CONTEXT (default kind-$KIND_CLUSTER), KIND_WAIT (default true),
# IMAGES (for load: the image references to load).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-authmesh}
CONTEXT=${KUBE_CONTEXT:-kind-$CLUSTER}
WAIT=${KIND_WAIT:-true}
NAMESPACE=authmesh-system
DEMO_NAMESPACE=default

kubectl() { "${KUBECTL:?KUBECTL must name a kubectl binary}" --context "$CONTEXT" "$@"; }
helm() { "${HELM:?HELM must name a helm binary}" --kube-context "$CONTEXT" "$@"; }
kind() { "${KIND:?KIND must name a kind binary}" "$@"; }

case "${1:-}" in
up)
  if kind get clusters | grep -qx "$CLUSTER"; then
    echo "kind cluster $CLUSTER exists"
  else
    kind create cluster --name "$CLUSTER" --config config/kind/cluster.yaml
  fi
  ;;
load)
  for image in ${IMAGES:?IMAGES must list the images to load}; do
    kind load docker-image --name "$CLUSTER" "$image"
  done
  ;;
deploy)
  # The dev database and mailer (the platform MongoDB and SMTP of the demo), then the chart.
  kubectl apply --server-side -k config/kind/dev
  helm upgrade --install authmesh charts/authmesh --namespace "$NAMESPACE" --create-namespace \
    --values config/kind/values.yaml
  if [ "$WAIT" = true ]; then
    kubectl -n "$NAMESPACE" wait --for=condition=Available deploy/authmesh-devdb deploy/authmesh-devmail \
      deploy/authmesh-controller deploy/authmesh-authserver --timeout=3m
  fi
  ;;
demo)
  # Tenants first: the webhook refuses pods of a tenant that is not Ready yet.
  kubectl apply --server-side -f config/samples/tenant-darmist1.yaml -f config/samples/tenant-acme2.yaml
  if [ "$WAIT" = true ]; then
    kubectl wait --for=condition=Ready tenant/darmist1 tenant/acme2 --timeout=3m
  fi
  kubectl apply --server-side -k config/samples -n "$DEMO_NAMESPACE"
  if [ "$WAIT" = true ]; then
    kubectl -n "$DEMO_NAMESPACE" wait --for=condition=Available deploy/demo-app --timeout=3m
  fi
  cat <<TXT
The demo app runs behind the sidecar. In two other terminals:
  kubectl --context $CONTEXT -n $NAMESPACE port-forward svc/authmesh-authserver 3502:3502
  kubectl --context $CONTEXT -n $DEMO_NAMESPACE port-forward svc/demo-app 8080:80
Then follow "Try it" in the README (login codes: kubectl --context $CONTEXT -n $NAMESPACE logs deploy/authmesh-devmail).
TXT
  ;;
*)
  echo "usage: $0 up|load|deploy|demo" >&2
  exit 2
  ;;
esac
