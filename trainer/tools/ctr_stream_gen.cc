// tandem-ctr-stream-gen: a producer for a streaming job (docs/streaming.md). Appends the
// synthetic click log of `format: synthetic-ctr` (trainer/data/synthetic_ctr_dataset.h: the same
// known model, so a trained model's AUC has a known bound) to a directory as libsvm files, over
// time, the way a log shipper would:
//
//   tandem-ctr-stream-gen --dir /tmp/clicks --files 20 --records-per-file 5000
//       --chunk 500 --interval-ms 200 --end-marker _END
//
// Files are clicks-000000.svm, clicks-000001.svm, ... (name order = write order), each grown in
// place by appends of --chunk records every --interval-ms; with --split-writes every append
// stops in the middle of a record and finishes it on the next one, so followers see partial
// last lines. Record i (counted over all files from --first-record) is
//   <click> qid:<i> 0:<id>:1 1:<id>:1 ... <fields-1>:<id>:1
// so `qid` is a unique record id (the stream tests count them). With --end-marker the named
// file is created once the last file is complete: the stream's end. Prints one JSON line at the
// end: {"records", "files", "best_auc"} (best_auc: the true probabilities' AUC on these records).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "nlohmann/json.hpp"
#include "trainer/data/synthetic_ctr_dataset.h"

namespace {

bool WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Appends a synthetic click log to a directory over time (a stream's producer)"};
  tandem::AddVersionFlag(app, "tandem-ctr-stream-gen");
  tandem::trainer::data::SyntheticCtrOptions o;
  std::string dir, end_marker, prefix = "clicks-";
  int64_t files = 10, per_file = 1000, chunk = 100, interval_ms = 100, first_record = 0;
  int64_t first_file = 0;
  bool split_writes = false;
  app.add_option("--dir", dir, "Directory to write into (created)")->required();
  app.add_option("--files", files, "Files to write")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--first-file", first_file, "Number of the first file")->capture_default_str();
  app.add_option("--records-per-file", per_file, "Records per file")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option("--chunk", chunk, "Records per append")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  app.add_option("--interval-ms", interval_ms, "Pause between appends")->capture_default_str()->check(CLI::Range(0, 3600000));
  app.add_option("--first-record", first_record, "Index (and qid) of the first record")->capture_default_str();
  app.add_option("--prefix", prefix, "File name prefix")->capture_default_str();
  app.add_option("--fields", o.num_fields, "Fields (one id each)")->capture_default_str();
  app.add_option("--zipf", o.zipf, "Zipf exponent of the ids")->capture_default_str();
  app.add_option("--seed", o.seed, "Model seed")->capture_default_str();
  app.add_option("--end-marker", end_marker, "Create this file in --dir after the last file");
  app.add_flag("--split-writes", split_writes, "End every append in the middle of a record");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::cerr << "tandem-ctr-stream-gen: " << dir << ": " << ec.message() << std::endl;
    return 1;
  }
  const tandem::trainer::data::SyntheticCtrGenerator gen(o);
  std::vector<uint64_t> ids(static_cast<size_t>(o.num_fields));
  std::vector<float> probs, clicks;
  int64_t record = first_record;
  std::string carry;  // the unwritten rest of a record split across two appends
  for (int64_t f = first_file; f < first_file + files; ++f) {
    const std::string path = absl::StrFormat("%s/%s%06d.svm", dir, prefix, f);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::cerr << "tandem-ctr-stream-gen: " << path << ": " << std::strerror(errno) << std::endl;
      return 1;
    }
    for (int64_t done = 0; done < per_file;) {
      std::string text = carry;
      carry.clear();
      const int64_t n = std::min(chunk, per_file - done);
      for (int64_t k = 0; k < n; ++k, ++record) {
        float p = 0, click = 0;
        gen.Example(record, ids.data(), &p, &click);
        probs.push_back(p);
        clicks.push_back(click);
        absl::StrAppend(&text, click > 0.5f ? "1" : "0", " qid:", record);
        for (int fi = 0; fi < o.num_fields; ++fi) absl::StrAppend(&text, " ", fi, ":", ids[fi], ":1");
        text.push_back('\n');
      }
      done += n;
      // Split the last record of this append, unless it is the file's last one.
      if (split_writes && done < per_file && text.size() > 2) {
        const size_t last_start = text.rfind('\n', text.size() - 2);
        const size_t cut = (last_start == std::string::npos ? 0 : last_start + 1) +
                           (text.size() - (last_start == std::string::npos ? 0 : last_start + 1)) / 2;
        carry = text.substr(cut);
        text.resize(cut);
      }
      if (!WriteAll(fd, text)) {
        std::cerr << "tandem-ctr-stream-gen: writing " << path << ": " << std::strerror(errno)
                  << std::endl;
        return 1;
      }
      if (interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
    ::close(fd);
  }
  if (!end_marker.empty()) {
    const std::string path = absl::StrCat(dir, "/", end_marker);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::cerr << "tandem-ctr-stream-gen: " << path << ": " << std::strerror(errno) << std::endl;
      return 1;
    }
    ::close(fd);
  }
  std::cout << nlohmann::json{{"records", record - first_record},
                              {"files", files},
                              {"best_auc", tandem::trainer::data::ExactAuc(probs, clicks)}}
                   .dump()
            << std::endl;
  return 0;
}
