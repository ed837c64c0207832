// Shapes, tensors and blobs: the values that flow between layers.
//
//   Tensor t;                       // empty
//   t.Resize(device, Shape({64, 10}));  // allocates once; later Resizes to <= capacity reuse memory
//   float* p = t.data();
//
// Memory comes from a Device, so the same Tensor holds host memory on the CPU backend and device
// memory on a GPU backend. A Tensor may also be a view into memory it does not own (the gradient
// arena). Not thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace tandem::trainer {

class Device;

// Dimensions of a tensor, outermost first (NCHW for images, [N, T, C] for sequences).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t dim(int i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t NumElements() const;
  // Shape with `n` prepended (per-example shape -> batch shape).
  Shape WithBatch(int64_t n) const;
  // "[64, 1, 28, 28]".
  std::string ToString() const;
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }

 private:
  std::vector<int64_t> dims_;
};

// A dense float tensor. Owns its memory (allocated on a Device) or views someone else's.
class Tensor {
 public:
  Tensor() = default;
  ~Tensor();
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& o) noexcept;
  Tensor& operator=(Tensor&& o) noexcept;

  // Sets the shape; allocates only when the element count exceeds the capacity, so resizing to
  // the last, smaller batch and back costs nothing. Contents are unspecified after a reallocation.
  void Resize(Device& device, const Shape& shape);
  // Makes this tensor a view of `data` (not owned) with `shape`.
  void View(float* data, const Shape& shape);
  // Reshapes without touching memory. REQUIRES: same or fewer elements than capacity.
  void Reshape(const Shape& shape);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int64_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }

 private:
  void Release();
  Device* owner_ = nullptr;  // null for views
  float* data_ = nullptr;
  int64_t capacity_ = 0;
  int64_t size_ = 0;
  Shape shape_;
};

// What flows along one edge of the graph: a value, its gradient, and integer side data.
struct Blob {
  Tensor value;                  // [N, ...]
  Tensor grad;                   // same shape as value; empty when no gradient flows here
  std::vector<int32_t> ids;      // ids/labels for integer inputs (labels, token and feature ids)
  std::vector<int32_t> offsets;  // CSR row starts into `ids` for multi-hot inputs (size N*fields+1)
  std::vector<int32_t> lengths;  // per-example sequence lengths for sequence values [N, T, C]
  bool needs_grad = false;       // whether the producer wants a gradient
  int64_t batch() const { return value.shape().rank() > 0 ? value.shape().dim(0) : 0; }
};

}  // namespace tandem::trainer
