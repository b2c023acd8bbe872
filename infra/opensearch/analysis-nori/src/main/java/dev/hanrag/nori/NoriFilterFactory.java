/*
 * hanrag analysis-nori: a settings-free token filter factory, used for "nori_readingform"
 * (KoreanReadingFormFilter: hanja -> hangul) and "nori_number" (KoreanNumberFilter:
 * Korean numerals -> arabic digits). See NoriPlugin for why this plugin exists.
 */
package dev.hanrag.nori;

import java.util.function.UnaryOperator;

import org.apache.lucene.analysis.TokenStream;
import org.opensearch.common.settings.Settings;
import org.opensearch.index.IndexSettings;
import org.opensearch.index.analysis.AbstractTokenFilterFactory;

public class NoriFilterFactory extends AbstractTokenFilterFactory {

    private final UnaryOperator<TokenStream> filter;

    public NoriFilterFactory(IndexSettings index, String name, Settings settings, UnaryOperator<TokenStream> filter) {
        super(index, name, settings);
        this.filter = filter;
    }

    @Override
    public TokenStream create(TokenStream input) {
        return filter.apply(input);
    }
}
