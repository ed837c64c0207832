// StreamReader: one trainer's records of a followed directory of libsvm files (spec.data.train
// with `stream`, docs/streaming.md). It never blocks: Read() hands out what is complete now.
//
//   StreamReader reader({.config = *source.stream, .num_fields = 26, .rank = r, .world_size = w});
//   reader.Restore(position_from_checkpoint);        // or start at the first file
//   batch.Allocate(reader.layout(), 256); batch.Clear();
//   TANDEM_ASSIGN_OR_RETURN(int added, reader.Read(&batch, &refs));   // 0..capacity-size records
//   StreamPosition after = reader.position();        // saved with the step that trains `batch`
//
// Rules (the contract the tests pin):
// - Files are read in name order (byte-wise); a name matches `pattern` (fnmatch), never starts
//   with '.', and is not the end marker. Producers write a file under a dot name and rename it,
//   or append to it in place; both work.
// - Only complete lines are consumed: bytes after the last '\n' of a file are left for later
//   (a partially written record is never parsed). The position's offset is always just after a
//   newline, or at the end of a closed file.
// - A file is closed when a later matching file exists, the end marker exists, or it has not
//   grown for close_idle_seconds (> 0). A closed file's unterminated last line is its last record.
//   Then the reader moves to the next file; it never goes back to a closed file.
// - A file that shrinks below the read position is an error (FailedPrecondition: streams are
//   append-only). A file deleted or renamed while open is read to its end through the open
//   descriptor. A file that disappears before it was opened (or, after a restart, the file of
//   the saved position) is skipped and counted (files_lost(), a metric), with a warning: its
//   records are not trained.
// - Split: kRecord: every trainer reads every file and takes the records (non-blank, non-comment
//   lines) whose index in the file is rank mod W; kFile: a file is read by one trainer only,
//   FNV-1a(name) mod W. Both depend only on the names, so every trainer and every restart agrees.
//
// Not thread-safe: one training thread uses it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/data/batch.h"
#include "trainer/data/data_config.h"

namespace tandem::trainer::data {

// Where one trainer stands in the stream: saved in its checkpoint, in the same consistent cut as
// the parameters.
struct StreamPosition {
  std::string file;       // name of the file being read ("" before the first one)
  int64_t offset = 0;     // bytes of `file` consumed (just after a newline, or its end)
  int64_t ordinal = 0;    // records of `file` passed over, every trainer's
  bool closed = false;    // `file` was closed and read to its end: resume at the next file
  int64_t records = 0;    // records this trainer took, all files
  int64_t bytes = 0;      // bytes this trainer consumed, all files
  int64_t files = 0;      // files this trainer finished
  bool operator==(const StreamPosition&) const = default;

  nlohmann::json ToJson() const;
  // InvalidArgument naming the field when `j` is not a position.
  static absl::StatusOr<StreamPosition> FromJson(const nlohmann::json& j);
};

// One record a Read() handed out: which file and its index there (every trainer's records
// counted), for the ledger.
struct StreamRecordRef {
  std::string file;
  int64_t ordinal = 0;
};

struct StreamReaderOptions {
  StreamConfig config;
  int num_fields = 1;           // as spec.data.train.numFields
  bool skip_malformed = false;  // spec.data.skipMalformed
  int rank = 0;                 // REQUIRES: 0 <= rank < world_size
  int world_size = 1;
  // Wall-clock seconds (the idle rule and the lag); tests inject their own.
  std::function<double()> now;
};

class StreamReader {
 public:
  explicit StreamReader(StreamReaderOptions options);
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // The layout of the batches (targets, query ids, num_fields sparse fields).
  const BatchLayout& layout() const { return layout_; }
  // Continues from `position` (a fresh reader starts before the first file).
  void Restore(const StreamPosition& position);
  // Appends up to batch->capacity - batch->size complete records available now to `batch`
  // (allocated for layout()); returns how many. `refs` (optional) gets one entry per record.
  // Errors: a malformed record (file and byte range named; skipped and counted with
  // skip_malformed), a file that shrank, an unreadable directory or file.
  absl::StatusOr<int> Read(Batch* batch, std::vector<StreamRecordRef>* refs = nullptr);
  // After the records handed out so far.
  const StreamPosition& position() const { return pos_; }
  // The end marker exists and every file of this trainer is read to its end.
  bool finished() const { return finished_; }

  // Bytes of this trainer's part not consumed yet, and how long ago the head of the stream was
  // first seen beyond the read position (0 when caught up). Lists the directory.
  struct Lag {
    int64_t bytes = 0;
    double seconds = 0;
  };
  absl::StatusOr<Lag> MeasureLag();

  int64_t files_lost() const { return files_lost_; }
  int64_t malformed_skipped() const { return malformed_skipped_; }
  bool file_open() const { return fd_ >= 0; }

 private:
  struct Listing {
    std::vector<std::string> names;  // matching, sorted
    bool end_marker = false;
  };
  absl::StatusOr<Listing> List() const;
  bool Owns(const std::string& name) const;
  std::string PathOf(const std::string& name) const;
  // Opens the next file of this trainer after the position (false: none yet).
  absl::StatusOr<bool> OpenNext();
  absl::Status OpenCurrent();
  void CloseFile();
  // Whether the open file is closed by the rules above.
  absl::StatusOr<bool> IsClosed(int64_t size);
  // Takes complete lines from buf_ into the batch; returns false when buf_ holds no full line.
  absl::Status TakeLines(Batch* batch, std::vector<StreamRecordRef>* refs, bool final_tail,
                         int* added);
  absl::Status AppendRecords(const std::string& text, const std::vector<int64_t>& ordinals,
                             int64_t first_offset, Batch* batch,
                             std::vector<StreamRecordRef>* refs, int* added);

  StreamReaderOptions options_;
  BatchLayout layout_;
  StreamPosition pos_;
  int fd_ = -1;
  std::string buf_;          // bytes of the open file read; buf_[buf_pos_] is at pos_.offset
  size_t buf_pos_ = 0;       // bytes of buf_ consumed (dropped before the next read)
  int64_t read_offset_ = 0;  // file offset of the end of buf_
  int64_t last_size_ = -1;   // the open file's size when it last grew
  double last_growth_ = 0;   // when it last grew (the idle rule)
  bool finished_ = false;
  int64_t files_lost_ = 0;
  int64_t malformed_skipped_ = 0;
  // Lag: when the head of the stream (name, size) was first seen, oldest first.
  struct HeadSeen {
    std::string file;
    int64_t size;
    double time;  // first seen
    double last;  // last seen (still the head then)
  };
  std::deque<HeadSeen> heads_;
  std::optional<HeadSeen> last_passed_;  // the newest observation the reader has passed
  bool lag_measured_ = false;  // the first measurement dates unread data by its file's mtime
};

// FNV-1a 64 of a file name: the kFile split's owner is FileOwnerHash(name) % world_size.
uint64_t FileOwnerHash(const std::string& name);

}  // namespace tandem::trainer::data
