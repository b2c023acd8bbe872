/*
 * hanrag analysis-nori: "nori_part_of_speech" (Lucene KoreanPartOfSpeechStopFilter).
 * Setting "stoptags": list of Lucene POS tags to drop (e.g. "JKS", "JX", "EF"); defaults to Lucene's
 * KoreanPartOfSpeechStopFilter.DEFAULT_STOP_TAGS. See NoriPlugin for why this plugin exists.
 */
package dev.hanrag.nori;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ko.KoreanPartOfSpeechStopFilter;
import org.apache.lucene.analysis.ko.POS;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.IndexSettings;
import org.opensearch.index.analysis.AbstractTokenFilterFactory;

public class NoriPartOfSpeechFilterFactory extends AbstractTokenFilterFactory {

    private final Set<POS.Tag> stopTags;

    public NoriPartOfSpeechFilterFactory(IndexSettings index, Environment env, String name, Settings settings) {
        super(index, name, settings);
        this.stopTags = stopTags(settings);
    }

    @Override
    public TokenStream create(TokenStream input) {
        return new KoreanPartOfSpeechStopFilter(input, stopTags);
    }

    /** Parses "stoptags" (tag names such as "JKS"); unknown tags fail loudly. */
    static Set<POS.Tag> stopTags(Settings settings) {
        List<String> tags = settings.getAsList("stoptags");
        if (tags.isEmpty()) {
            return KoreanPartOfSpeechStopFilter.DEFAULT_STOP_TAGS;
        }
        Set<POS.Tag> result = EnumSet.noneOf(POS.Tag.class);
        for (String tag : tags) {
            try {
                result.add(POS.resolveTag(tag.trim()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown nori part-of-speech tag in stoptags: [" + tag + "]", e);
            }
        }
        return result;
    }
}
