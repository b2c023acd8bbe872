/*
 * hanrag analysis-nori: our own small OpenSearch plugin that exposes Lucene's Korean
 * morphological analyzer (org.apache.lucene:lucene-analysis-nori) under the component names
 * Amazon OpenSearch Service accepts: tokenizer "nori_tokenizer", token filters
 * "nori_part_of_speech", "nori_readingform", "nori_number", and analyzer "nori".
 *
 * Why it exists: Amazon OpenSearch Service ships analysis-nori preinstalled, but the upstream
 * plugin zip is not published to Maven Central, so local/CI nodes could not use the same index
 * mapping. Installing this plugin as plugins/analysis-nori/ makes one mapping serve both.
 */
package dev.hanrag.nori;

import java.util.Map;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.ko.KoreanNumberFilter;
import org.apache.lucene.analysis.ko.KoreanReadingFormFilter;
import org.opensearch.index.analysis.AnalyzerProvider;
import org.opensearch.index.analysis.TokenFilterFactory;
import org.opensearch.index.analysis.TokenizerFactory;
import org.opensearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.opensearch.plugins.AnalysisPlugin;
import org.opensearch.plugins.Plugin;

/** Registers the nori components; the factories hold all the logic. */
public class NoriPlugin extends Plugin implements AnalysisPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("nori_tokenizer", NoriTokenizerFactory::new);
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "nori_part_of_speech", NoriPartOfSpeechFilterFactory::new,
            "nori_readingform", (index, env, name, settings) ->
                new NoriFilterFactory(index, name, settings, KoreanReadingFormFilter::new),
            "nori_number", (index, env, name, settings) ->
                new NoriFilterFactory(index, name, settings, KoreanNumberFilter::new));
    }

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        return Map.of("nori", NoriAnalyzerProvider::new);
    }
}
