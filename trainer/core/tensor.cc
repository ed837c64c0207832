#include "trainer/core/tensor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "trainer/core/device.h"

namespace tandem::trainer {

int64_t Shape::NumElements() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

Shape Shape::WithBatch(int64_t n) const {
  std::vector<int64_t> d;
  d.reserve(dims_.size() + 1);
  d.push_back(n);
  d.insert(d.end(), dims_.begin(), dims_.end());
  return Shape(std::move(d));
}

std::string Shape::ToString() const { return absl::StrCat("[", absl::StrJoin(dims_, ", "), "]"); }

Tensor::~Tensor() { Release(); }

Tensor::Tensor(Tensor&& o) noexcept { *this = std::move(o); }

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    Release();
    owner_ = std::exchange(o.owner_, nullptr);
    data_ = std::exchange(o.data_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    size_ = std::exchange(o.size_, 0);
    shape_ = std::move(o.shape_);
  }
  return *this;
}

void Tensor::Release() {
  if (owner_ != nullptr && data_ != nullptr) owner_->Free(data_);
  owner_ = nullptr;
  data_ = nullptr;
  capacity_ = 0;
  size_ = 0;
}

void Tensor::Resize(Device& device, const Shape& shape) {
  const int64_t n = shape.NumElements();
  if (n > capacity_ || (owner_ != nullptr && owner_ != &device) || (owner_ == nullptr && data_)) {
    Release();
    data_ = device.Allocate(n);
    owner_ = &device;
    capacity_ = n;
  }
  size_ = n;
  shape_ = shape;
}

void Tensor::View(float* data, const Shape& shape) {
  Release();
  data_ = data;
  size_ = capacity_ = shape.NumElements();
  shape_ = shape;
}

void Tensor::Reshape(const Shape& shape) {
  TANDEM_CHECK_LE(shape.NumElements(), capacity_) << shape.ToString();
  size_ = shape.NumElements();
  shape_ = shape;
}

}  // namespace tandem::trainer
