/*
 * hanrag analysis-nori: "nori_tokenizer" (Lucene KoreanTokenizer). See NoriPlugin for why.
 *
 * Settings (as on Amazon OpenSearch Service):
 *   decompound_mode        none | discard (default) | mixed
 *   discard_punctuation    boolean, default true
 *   user_dictionary_rules  list of "word [segment ...]" rules, optional
 *   user_dictionary        path to a rules file (relative to the config dir), optional
 */
package dev.hanrag.nori;

import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Locale;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.ko.KoreanTokenizer;
import org.apache.lucene.analysis.ko.KoreanTokenizer.DecompoundMode;
import org.apache.lucene.analysis.ko.dict.UserDictionary;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.IndexSettings;
import org.opensearch.index.analysis.AbstractTokenizerFactory;
import org.opensearch.index.analysis.Analysis;

public class NoriTokenizerFactory extends AbstractTokenizerFactory {

    private final UserDictionary userDictionary;
    private final DecompoundMode decompoundMode;
    private final boolean discardPunctuation;

    public NoriTokenizerFactory(IndexSettings index, Environment env, String name, Settings settings) {
        super(index, settings, name);
        this.userDictionary = userDictionary(env, settings);
        this.decompoundMode = decompoundMode(settings);
        this.discardPunctuation = settings.getAsBoolean("discard_punctuation", true);
    }

    @Override
    public Tokenizer create() {
        return new KoreanTokenizer(
            TokenStream.DEFAULT_TOKEN_ATTRIBUTE_FACTORY, userDictionary, decompoundMode, discardPunctuation);
    }

    /** decompound_mode: none | discard | mixed; defaults to discard (Lucene's default). */
    static DecompoundMode decompoundMode(Settings settings) {
        String value = settings.get("decompound_mode");
        if (value == null) {
            return KoreanTokenizer.DEFAULT_DECOMPOUND;
        }
        try {
            return DecompoundMode.valueOf(value.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                "decompound_mode must be one of none, discard, mixed; got [" + value + "]", e);
        }
    }

    /** Builds the user dictionary from user_dictionary_rules or user_dictionary; null if neither is set. */
    static UserDictionary userDictionary(Environment env, Settings settings) {
        List<String> rules = settings.getAsList("user_dictionary_rules");
        boolean hasPath = settings.get("user_dictionary") != null;
        if (!rules.isEmpty() && hasPath) {
            throw new IllegalArgumentException("set only one of user_dictionary and user_dictionary_rules");
        }
        try {
            if (!rules.isEmpty()) {
                return UserDictionary.open(new StringReader(String.join("\n", rules)));
            }
            if (hasPath) {
                try (Reader reader = Analysis.getReaderFromFile(env, settings, "user_dictionary")) {
                    return UserDictionary.open(reader);
                }
            }
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("failed to load nori user dictionary", e);
        }
    }
}
