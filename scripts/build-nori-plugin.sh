#!/usr/bin/env bash
# Build our analysis-nori OpenSearch plugin (infra/opensearch/analysis-nori: Lucene's Korean analyzer
# under Amazon OpenSearch Service's names) and install it, unpacked, into the directory given:
#
#   scripts/build-nori-plugin.sh .cache/opensearch/opensearch-3.5.0/plugins/analysis-nori
#
# Needs Maven and a JDK 21+ (JAVA_HOME, default temurin 25). Safe to re-run: the target dir is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:?usage: $0 <opensearch>/plugins/analysis-nori}"
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
# Maven 3.8's bundled guava touches sun.misc.Unsafe; keep JDK 24+ quiet about it.
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"

# quiet on success; the whole Maven log when the build fails
log=$(mktemp)
(cd infra/opensearch/analysis-nori && mvn -q -B -Dstyle.color=never package) >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
rm -f "$log"

built=infra/opensearch/analysis-nori/target/analysis-nori
[ -f "$built/plugin-descriptor.properties" ] || { echo "build produced no $built/plugin-descriptor.properties" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
cp "$built"/* "$dest"/
echo "analysis-nori plugin installed in $dest"
