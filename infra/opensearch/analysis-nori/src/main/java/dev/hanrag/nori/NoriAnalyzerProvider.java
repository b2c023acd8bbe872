/*
 * hanrag analysis-nori: analyzer "nori" = Lucene KoreanAnalyzer, i.e. nori_tokenizer +
 * nori_part_of_speech + nori_readingform + lowercase, as on Amazon OpenSearch Service.
 * Accepts the tokenizer's settings (decompound_mode, user_dictionary[_rules]) and "stoptags".
 * See NoriPlugin for why this plugin exists.
 */
package dev.hanrag.nori;

import org.apache.lucene.analysis.ko.KoreanAnalyzer;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.IndexSettings;
import org.opensearch.index.analysis.AbstractIndexAnalyzerProvider;

public class NoriAnalyzerProvider extends AbstractIndexAnalyzerProvider<KoreanAnalyzer> {

    private final KoreanAnalyzer analyzer;

    public NoriAnalyzerProvider(IndexSettings index, Environment env, String name, Settings settings) {
        super(index, name, settings);
        this.analyzer = new KoreanAnalyzer(
            NoriTokenizerFactory.userDictionary(env, settings),
            NoriTokenizerFactory.decompoundMode(settings),
            NoriPartOfSpeechFilterFactory.stopTags(settings),
            false);
    }

    @Override
    public KoreanAnalyzer get() {
        return analyzer;
    }
}
