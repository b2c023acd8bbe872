#!/usr/bin/env bash
# A real OpenSearch node beside hanrag, for the tests and for trying HANRAG_INDEX=opensearch.
#
#   scripts/opensearch.sh fetch              download (checksums checked) and assemble the node in the cache
#   scripts/opensearch.sh start [PORT DATA]  start a single node on 127.0.0.1:PORT (default 9200), wait until it answers
#   scripts/opensearch.sh stop  [PORT]       stop it
#
# What it runs: OpenSearch 3.5.0, the integ-test distribution from Maven Central (3.5 is the first whose
# integ-test zip holds every module: lang-painless, reindex for _delete_by_query, analysis-common), with
# the k-NN plugin (its `lucene` engine needs no native library) and our analysis-nori plugin
# (infra/opensearch/analysis-nori: Lucene's Korean analyzer under the names Amazon OpenSearch Service
# uses; the official plugin zip is not on Maven Central). The CDK domain runs the same version.
# Security is off because the node listens on loopback only. Heap 512 MB. Logs: $CACHE/logs-PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.5.0
KNN_VERSION=3.5.0.0
MAVEN=https://repo1.maven.org/maven2
CACHE=${HANRAG_OPENSEARCH_CACHE:-$PWD/.cache/opensearch}
HOME_DIR=$CACHE/opensearch-$VERSION
JAVA_HOME=${HANRAG_OPENSEARCH_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}  # 3.x needs Java 21+
export JAVA_HOME
RUN_AS=hanrag-opensearch  # the user the node runs as when this script runs as root

# name  url  sha256 (pinned here, so a changed artifact is refused)
ARTIFACTS=(
  "opensearch-$VERSION.zip $MAVEN/org/opensearch/distribution/integ-test-zip/opensearch/$VERSION/opensearch-$VERSION.zip b676ad392c95a94d8d2bd8785b8b922c7811536daf6a9ec0c7277a34bd8a17a9"
  "opensearch-knn-$KNN_VERSION.zip $MAVEN/org/opensearch/plugin/opensearch-knn/$KNN_VERSION/opensearch-knn-$KNN_VERSION.zip 99fdf3ac9ef95974e276298b83a58532bf21ba13bd5fd96a4b59465b7e613309"
)

fetch() {
  # assembled once per version of this script and of the nori plugin's source
  local stamp="$HOME_DIR/.assembled-$(find scripts/opensearch.sh infra/opensearch/analysis-nori/pom.xml infra/opensearch/analysis-nori/src \
    -type f | sort | xargs cat | cksum | cut -d' ' -f1)"
  [[ -f "$stamp" ]] && return 0
  [[ -x "$JAVA_HOME/bin/java" ]] || { echo "opensearch: Java 21+ is needed at $JAVA_HOME (set HANRAG_OPENSEARCH_JAVA_HOME)" >&2; exit 1; }
  mkdir -p "$CACHE/downloads"
  for entry in "${ARTIFACTS[@]}"; do
    read -r name url sum <<<"$entry"
    local file="$CACHE/downloads/$name"
    if [[ ! -f "$file" ]] || ! echo "$sum  $file" | sha256sum --check --status; then
      echo "opensearch: downloading $name"
      curl --fail --silent --show-error --location --retry 3 -o "$file.part" "$url"
      echo "$sum  $file.part" | sha256sum --check --status || { echo "opensearch: checksum mismatch for $name" >&2; rm -f "$file.part"; exit 1; }
      mv "$file.part" "$file"
    fi
  done
  rm -rf "$HOME_DIR" && mkdir -p "$CACHE"
  unzip -q "$CACHE/downloads/opensearch-$VERSION.zip" -d "$CACHE"
  mkdir -p "$HOME_DIR/plugins/opensearch-knn"
  unzip -q "$CACHE/downloads/opensearch-knn-$KNN_VERSION.zip" -d "$HOME_DIR/plugins/opensearch-knn"
  scripts/build-nori-plugin.sh "$HOME_DIR/plugins/analysis-nori"
  touch "$stamp"
}

url() { echo "http://127.0.0.1:$1"; }

start() {
  local port=${1:-9200} data=${2:-$CACHE/data-${1:-9200}}
  local logs="$CACHE/logs-$port" pidfile="$CACHE/logs-$port/node.pid"
  fetch
  if curl --silent --fail "$(url "$port")" >/dev/null 2>&1; then
    # reuse a node only if this script started it on the same data folder: a node left over from another
    # run (or someone else's) would hand the caller an index it did not expect
    if [[ "$(cat "$logs/node.data" 2>/dev/null)" == "$data" ]]; then
      echo "opensearch: already answering on $(url "$port") (data: $data)"; return 0
    fi
    echo "opensearch: port $port is taken by a node not started on $data; stop it first ($0 stop $port)" >&2
    exit 1
  fi
  mkdir -p "$data" "$logs"
  echo "$data" >"$logs/node.data"
  local as=()
  if [[ $(id -u) == 0 ]]; then  # OpenSearch refuses to run as root: run it as a system user of its own
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS"
    chown -R "$RUN_AS" "$data" "$logs" "$HOME_DIR"
    as=(runuser -u "$RUN_AS" --)
  fi
  local started=$SECONDS
  OPENSEARCH_JAVA_OPTS="-Xms512m -Xmx512m ${OPENSEARCH_JAVA_OPTS:-}" "${as[@]}" "$HOME_DIR/bin/opensearch" -d -p "$pidfile" \
    -Ecluster.name=hanrag -Enode.name="hanrag-$port" -Ediscovery.type=single-node \
    -Enetwork.host=127.0.0.1 -Ehttp.port="$port" -Etransport.port="$((port + 100))" \
    -Epath.data="$data" -Epath.logs="$logs" -Eaction.auto_create_index=false \
    >"$logs/stdout.log" 2>&1 || { tail -n 40 "$logs/stdout.log" >&2; exit 1; }
  for _ in $(seq 1 240); do
    if curl --silent --fail "$(url "$port")/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "opensearch $VERSION: $(url "$port") up in $((SECONDS - started)) s (logs: $logs)"; return 0
    fi
    if [[ -f "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "opensearch: the node on port $port did not start; the end of its log:" >&2
  tail -n 40 "$logs/hanrag.log" "$logs/stdout.log" >&2 2>/dev/null || true
  exit 1
}

stop() {
  local port=${1:-9200} pidfile="$CACHE/logs-${1:-9200}/node.pid"
  [[ -f "$pidfile" ]] || { echo "opensearch: no node started on port $port"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile" "$CACHE/logs-$port/node.data"
  echo "opensearch: stopped the node on port $port"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: $0 fetch | start [PORT DATA_DIR] | stop [PORT]" >&2; exit 2 ;;
esac
