#include "trainer/data/data_config.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::trainer::data {
namespace {

using nlohmann::json;

std::string TypeName(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();
}

std::string Brief(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

// Collects every problem with its field path; the parse goes on after an error so that one run of
// `tandem validate` shows all of them.
class Parser {
 public:
  Parser(const ParseOptions& options, std::vector<std::string>* errors)
      : options_(options), errors_(errors) {}

  void Error(const std::string& path, const std::string& what) {
    errors_->push_back(absl::StrCat(path, ": ", what));
  }

  // Reports keys of `obj` outside `known` (a typo such as `batchsize` must not pass silently).
  void CheckKnownKeys(const json& obj, const std::string& path,
                      std::initializer_list<const char*> known) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool found = false;
      for (const char* k : known) found = found || it.key() == k;
      if (!found) {
        std::vector<std::string> names(known.begin(), known.end());
        Error(absl::StrCat(path, ".", it.key()),
              absl::StrCat("unknown field (known: ", absl::StrJoin(names, ", "), ")"));
      }
    }
  }

  bool Int(const json& obj, const std::string& path, const char* key, int64_t min, int64_t max,
           int64_t* out) {
    if (!obj.contains(key)) return false;
    const json& v = obj[key];
    const std::string p = absl::StrCat(path, ".", key);
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(max)) {
        Error(p, absl::StrCat("must be <= ", max, ", got ", u));
        return false;
      }
      *out = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      *out = v.get<int64_t>();
    } else {
      Error(p, absl::StrCat("must be an integer, got ", TypeName(v), " ", Brief(v)));
      return false;
    }
    if (*out < min) {
      Error(p, min == 1 ? absl::StrCat("must be > 0, got ", *out)
                        : absl::StrCat("must be >= ", min, ", got ", *out));
      return false;
    }
    if (*out > max) {
      Error(p, absl::StrCat("must be <= ", max, ", got ", *out));
      return false;
    }
    return true;
  }

  void Bool(const json& obj, const std::string& path, const char* key, bool* out) {
    if (!obj.contains(key)) return;
    const json& v = obj[key];
    if (!v.is_boolean()) {
      Error(absl::StrCat(path, ".", key),
            absl::StrCat("must be true or false, got ", TypeName(v), " ", Brief(v)));
      return;
    }
    *out = v.get<bool>();
  }

  bool String(const json& obj, const std::string& path, const char* key, std::string* out) {
    if (!obj.contains(key)) return false;
    const json& v = obj[key];
    const std::string p = absl::StrCat(path, ".", key);
    if (!v.is_string()) {
      Error(p, absl::StrCat("must be a string, got ", TypeName(v), " ", Brief(v)));
      return false;
    }
    *out = v.get<std::string>();
    if (out->empty()) {
      Error(p, "must not be empty");
      return false;
    }
    return true;
  }

  void CheckFile(const std::string& path, const std::string& file) {
    if (!options_.check_files) return;
    if (::access(file.c_str(), F_OK) != 0) {
      Error(path, absl::StrCat("file not found: ", file));
    } else if (::access(file.c_str(), R_OK) != 0) {
      Error(path, absl::StrCat("file not readable: ", file, " (", std::strerror(errno), ")"));
    }
  }

  void Source(const json& src, const std::string& path, bool is_test, SourceConfig* out) {
    if (!src.is_object()) {
      Error(path, absl::StrCat("must be an object, got ", TypeName(src), " ", Brief(src)));
      return;
    }
    std::string format = "idx";
    if (src.contains("format")) String(src, path, "format", &format);
    if (format == "idx") {
      out->format = DataFormat::kIdx;
      CheckKnownKeys(src, path, {"format", "images", "labels", "limit"});
      const std::string base = absl::StrCat(kFashionMnistDir, "/", is_test ? "t10k" : "train");
      out->images = absl::StrCat(base, "-images-idx3-ubyte.gz");
      out->labels = absl::StrCat(base, "-labels-idx1-ubyte.gz");
      if (String(src, path, "images", &out->images) || !src.contains("images"))
        CheckFile(absl::StrCat(path, ".images"), out->images);
      if (String(src, path, "labels", &out->labels) || !src.contains("labels"))
        CheckFile(absl::StrCat(path, ".labels"), out->labels);
    } else if (format == "libsvm" || format == "tokens") {
      const bool tokens = format == "tokens";
      out->format = tokens ? DataFormat::kTokens : DataFormat::kLibsvm;
      if (tokens) {
        CheckKnownKeys(src, path,
                       {"format", "path", "limit", "sequenceLength", "vocabSize", "mode"});
      } else {
        CheckKnownKeys(src, path, {"format", "path", "limit", "numFields", "stream"});
      }
      if (!tokens && src.contains("stream")) {
        const std::string sp = absl::StrCat(path, ".stream");
        if (is_test) {
          Error(sp, "only the training source can be a stream (the rolling evaluation scores "
                    "the stream itself: stream.rollingEval)");
        } else if (src.contains("path")) {
          Error(absl::StrCat(path, ".path"), "a stream source takes stream.dir, not path");
        } else if (src.contains("limit")) {
          Error(absl::StrCat(path, ".limit"), "not supported for a stream (use stream.maxSteps)");
        } else {
          Stream(src["stream"], sp, &out->stream.emplace());
        }
      } else {
        Paths(src, path, out);
      }
      if (tokens) {
        int64_t v = 0;
        if (Int(src, path, "sequenceLength", 1, 1 << 20, &v)) out->sequence_length = static_cast<int>(v);
        if (!src.contains("sequenceLength")) Error(absl::StrCat(path, ".sequenceLength"), "required for format tokens");
        if (Int(src, path, "vocabSize", 1, std::numeric_limits<int32_t>::max(), &v)) out->vocab_size = v;
        std::string mode = "stream";
        if (String(src, path, "mode", &mode)) {
          if (mode == "stream") {
            out->token_mode = TokenMode::kStream;
          } else if (mode == "lines") {
            out->token_mode = TokenMode::kLines;
          } else {
            Error(absl::StrCat(path, ".mode"),
                  absl::StrCat("unknown mode \"", mode, "\" (known: stream, lines)"));
          }
        }
      } else {
        int64_t v = 0;
        if (Int(src, path, "numFields", 1, 65535, &v)) out->num_fields = static_cast<int>(v);
      }
    } else if (format == "parallel-text") {
      out->format = DataFormat::kParallelText;
      CheckKnownKeys(src, path, {"format", "path", "limit", "sourceLength", "targetLength",
                                 "sourceVocabSize", "targetVocabSize", "tokenize"});
      Paths(src, path, out);
      int64_t v = 0;
      if (Int(src, path, "sourceLength", 1, 1 << 16, &v)) out->source_length = static_cast<int>(v);
      if (!src.contains("sourceLength"))
        Error(absl::StrCat(path, ".sourceLength"), "required for format parallel-text");
      if (Int(src, path, "targetLength", 2, 1 << 16, &v)) out->sequence_length = static_cast<int>(v);
      if (!src.contains("targetLength"))
        Error(absl::StrCat(path, ".targetLength"), "required for format parallel-text");
      if (Int(src, path, "sourceVocabSize", 5, std::numeric_limits<int32_t>::max(), &v))
        out->source_vocab_size = v;
      if (Int(src, path, "targetVocabSize", 5, std::numeric_limits<int32_t>::max(), &v))
        out->target_vocab_size = v;
      std::string tokenize = "chars";
      if (String(src, path, "tokenize", &tokenize)) {
        if (tokenize != "chars" && tokenize != "words")
          Error(absl::StrCat(path, ".tokenize"),
                absl::StrCat("unknown tokenize \"", tokenize, "\" (known: chars, words)"));
        out->tokenize_words = tokenize == "words";
      }
    } else if (format == "synthetic-ctr") {
      out->format = DataFormat::kSyntheticCtr;
      out->synthetic_test = is_test;
      CheckKnownKeys(src, path,
                     {"format", "examples", "numFields", "zipf", "seed", "pairs", "limit"});
      Bool(src, path, "pairs", &out->synthetic_pairs);
      int64_t v = 0;
      if (Int(src, path, "examples", 1, int64_t{1} << 31, &v)) out->examples = v;
      if (!src.contains("examples"))
        Error(absl::StrCat(path, ".examples"), "required for format synthetic-ctr");
      out->num_fields = 26;
      if (Int(src, path, "numFields", 1, 65535, &v)) out->num_fields = static_cast<int>(v);
      if (Int(src, path, "seed", 0, std::numeric_limits<int64_t>::max(), &v))
        out->synthetic_seed = static_cast<uint64_t>(v);
      if (src.contains("zipf")) {
        const json& z = src["zipf"];
        if (!z.is_number() || !(z.get<double>() > 1.0) || !(z.get<double>() <= 4.0)) {
          Error(absl::StrCat(path, ".zipf"),
                absl::StrCat("must be a number in (1, 4], got ", Brief(z)));
        } else {
          out->zipf = z.get<double>();
        }
      }
    } else {
      if (src.contains("format") && src["format"].is_string()) {
        Error(absl::StrCat(path, ".format"),
              absl::StrCat("unknown format \"", format,
                           "\" (known: idx, libsvm, tokens, synthetic-ctr, parallel-text)"));
      }
      return;
    }
    int64_t limit = 0;
    if (Int(src, path, "limit", 0, std::numeric_limits<int64_t>::max(), &limit)) out->limit = limit;
  }

  // A number (integer or float) in [min, max].
  bool Number(const json& obj, const std::string& path, const char* key, double min, double max,
              bool min_exclusive, double* out) {
    if (!obj.contains(key)) return false;
    const json& v = obj[key];
    const std::string p = absl::StrCat(path, ".", key);
    if (!v.is_number()) {
      Error(p, absl::StrCat("must be a number, got ", TypeName(v), " ", Brief(v)));
      return false;
    }
    const double d = v.get<double>();
    if (!(min_exclusive ? d > min : d >= min) || !(d <= max)) {
      Error(p, absl::StrCat("must be in ", min_exclusive ? "(" : "[", min, ", ", max, "], got ",
                            Brief(v)));
      return false;
    }
    *out = d;
    return true;
  }

  void Stream(const json& s, const std::string& path, StreamConfig* out) {
    if (!s.is_object()) {
      Error(path, absl::StrCat("must be an object, got ", TypeName(s), " ", Brief(s)));
      return;
    }
    CheckKnownKeys(s, path,
                   {"dir", "pattern", "pollSeconds", "closeIdleSeconds", "endMarker", "split",
                    "maxSteps", "maxHours", "rollingEval", "ledger"});
    if (!s.contains("dir")) {
      Error(absl::StrCat(path, ".dir"), "required for a stream");
    } else if (String(s, path, "dir", &out->dir) && options_.check_files) {
      std::error_code ec;
      if (!std::filesystem::is_directory(out->dir, ec))
        Error(absl::StrCat(path, ".dir"), absl::StrCat("not a directory: ", out->dir));
    }
    String(s, path, "pattern", &out->pattern);
    if (String(s, path, "endMarker", &out->end_marker) &&
        out->end_marker.find('/') != std::string::npos) {
      Error(absl::StrCat(path, ".endMarker"),
            absl::StrCat("must be a file name in dir, without '/', got \"", out->end_marker, "\""));
    }
    Number(s, path, "pollSeconds", 0, 3600, /*min_exclusive=*/true, &out->poll_seconds);
    Number(s, path, "closeIdleSeconds", 0, 7 * 86400, false, &out->close_idle_seconds);
    Number(s, path, "maxHours", 0, 24 * 365 * 10, false, &out->max_hours);
    Int(s, path, "maxSteps", 0, std::numeric_limits<int64_t>::max(), &out->max_steps);
    std::string split;
    if (String(s, path, "split", &split)) {
      if (split == "record") {
        out->split = StreamSplit::kRecord;
      } else if (split == "file") {
        out->split = StreamSplit::kFile;
      } else {
        Error(absl::StrCat(path, ".split"),
              absl::StrCat("unknown split \"", split, "\" (known: record, file)"));
      }
    }
    Bool(s, path, "ledger", &out->ledger);
    if (s.contains("rollingEval")) {
      const json& e = s["rollingEval"];
      const std::string ep = absl::StrCat(path, ".rollingEval");
      if (!e.is_object()) {
        Error(ep, absl::StrCat("must be an object, got ", TypeName(e), " ", Brief(e)));
      } else {
        CheckKnownKeys(e, ep, {"windowRecords", "intervalSteps"});
        Int(e, ep, "windowRecords", 0, int64_t{1} << 30, &out->eval_window);
        Int(e, ep, "intervalSteps", 1, std::numeric_limits<int32_t>::max(),
            &out->eval_interval_steps);
      }
    }
  }

  void Paths(const json& src, const std::string& path, SourceConfig* out) {
    const std::string p = absl::StrCat(path, ".path");
    if (!src.contains("path")) {
      Error(p, absl::StrCat("required for format ", DataFormatName(out->format)));
      return;
    }
    const json& v = src["path"];
    if (v.is_string()) {
      std::string file;
      if (String(src, path, "path", &file)) {
        CheckFile(p, file);
        out->paths.push_back(file);
      }
    } else if (v.is_array()) {
      if (v.empty()) Error(p, "must list at least one file");
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string pi = absl::StrCat(p, "[", i, "]");
        if (!v[i].is_string() || v[i].get<std::string>().empty()) {
          Error(pi, absl::StrCat("must be a non-empty string, got ", TypeName(v[i]), " ",
                                 Brief(v[i])));
          continue;
        }
        out->paths.push_back(v[i].get<std::string>());
        CheckFile(pi, out->paths.back());
      }
    } else {
      Error(p, absl::StrCat("must be a string or a list of strings, got ", TypeName(v), " ",
                            Brief(v)));
    }
  }

 private:
  const ParseOptions& options_;
  std::vector<std::string>* errors_;
};

bool IsDefaultFashionMnist(const SourceConfig& s) {
  return s.format == DataFormat::kIdx &&
         s.images == absl::StrCat(kFashionMnistDir, "/train-images-idx3-ubyte.gz") &&
         s.labels == absl::StrCat(kFashionMnistDir, "/train-labels-idx1-ubyte.gz");
}

}  // namespace

const char* DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kIdx:
      return "idx";
    case DataFormat::kLibsvm:
      return "libsvm";
    case DataFormat::kTokens:
      return "tokens";
    case DataFormat::kSyntheticCtr:
      return "synthetic-ctr";
    case DataFormat::kParallelText:
      return "parallel-text";
  }
  return "unknown";
}

std::vector<std::string> ParseDataConfig(const nlohmann::json& data, const ParseOptions& options,
                                         DataConfig* config) {
  std::vector<std::string> errors;
  Parser p(options, &errors);
  *config = DataConfig{};
  const std::string& path = options.path;
  static const json kEmpty = json::object();
  const json* root = &data;
  if (data.is_null()) {
    root = &kEmpty;
  } else if (!data.is_object()) {
    p.Error(path, absl::StrCat("must be an object, got ", TypeName(data), " ", Brief(data)));
    return errors;
  }
  const json& d = *root;
  p.CheckKnownKeys(d, path,
                   {"train", "test", "batchSize", "shuffle", "seed", "prefetch", "skipMalformed",
                    "bucketByLength", "batchTokens"});
  p.Source(d.contains("train") ? d["train"] : kEmpty, absl::StrCat(path, ".train"),
           /*is_test=*/false, &config->train);
  if (d.contains("test") && !d["test"].is_null()) {
    config->test.emplace();
    p.Source(d["test"], absl::StrCat(path, ".test"), /*is_test=*/true, &*config->test);
  } else if (!d.contains("test") && IsDefaultFashionMnist(config->train)) {
    config->test.emplace();
    p.Source(kEmpty, absl::StrCat(path, ".test"), /*is_test=*/true, &*config->test);
  }
  if (config->train.stream && config->test) {
    p.Error(absl::StrCat(path, ".test"),
            "a stream has no passes to evaluate after: leave test out and use "
            "train.stream.rollingEval (scores every record before it is trained on)");
  }
  if (config->test && config->test->format != config->train.format) {
    p.Error(absl::StrCat(path, ".test.format"),
            absl::StrCat("must match ", path, ".train.format (",
                         DataFormatName(config->train.format), "), got ", DataFormatName(config->test->format)));
  }
  int64_t v = 0;
  if (p.Int(d, path, "batchSize", 1, 1 << 24, &v)) config->batch_size = static_cast<int>(v);
  if (p.Int(d, path, "prefetch", 0, 1024, &v)) config->prefetch = static_cast<int>(v);
  if (p.Int(d, path, "seed", 0, std::numeric_limits<int64_t>::max(), &v))
    config->seed = static_cast<uint64_t>(v);
  p.Bool(d, path, "shuffle", &config->shuffle);
  p.Bool(d, path, "skipMalformed", &config->skip_malformed);
  p.Bool(d, path, "bucketByLength", &config->bucket_by_length);
  if (p.Int(d, path, "batchTokens", 1, int64_t{1} << 30, &v)) config->batch_tokens = v;
  // Parallel text: both sources take their vocabularies from the training files.
  if (config->train.format == DataFormat::kParallelText) {
    config->train.vocab_paths = config->train.paths;
    if (config->test) config->test->vocab_paths = config->train.paths;
  }
  return errors;
}

absl::StatusOr<DataConfig> ParseDataConfig(const nlohmann::json& data,
                                           const ParseOptions& options) {
  DataConfig config;
  std::vector<std::string> errors = ParseDataConfig(data, options, &config);
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return config;
}

}  // namespace tandem::trainer::data
