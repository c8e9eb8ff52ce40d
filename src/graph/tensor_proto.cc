#include "graph/tensor_proto.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace hearth {
namespace fs = std::filesystem;

namespace {

// Copies `n` values from a repeated field into the tensor, converting each.
template <typename T, typename Field, typename Conv>
void copy_field(const Field& f, Tensor& t, Conv conv) {
  T* d = t.data<T>();
  for (int i = 0; i < f.size(); ++i) d[i] = conv(f.Get(i));
}

Status check_count(const std::string& name, int64_t have, int64_t want, const char* field) {
  if (have != want) {
    return invalid_argument("tensor '", name, "' has ", have, " values in ", field, " but its dims need ", want);
  }
  return ok_status();
}

// Resolves an external-data location inside base_dir; refuses anything outside.
Result<fs::path> resolve_external(const std::string& location, const std::string& base_dir, const std::string& name) {
  if (base_dir.empty()) {
    return invalid_argument("tensor '", name, "' uses external data, which is not allowed for a model loaded from memory");
  }
  fs::path loc(location);
  if (location.empty() || loc.is_absolute()) {
    return invalid_argument("tensor '", name, "': external data location '", location,
                            "' must be a relative path inside the model's folder");
  }
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(base_dir), ec);
  fs::path full = fs::weakly_canonical(base / loc, ec);
  if (ec) return invalid_argument("tensor '", name, "': cannot resolve external data '", location, "'");
  auto rel = full.lexically_relative(base);
  if (rel.empty() || *rel.begin() == "..") {
    return invalid_argument("tensor '", name, "': external data location '", location,
                            "' leaves the model's folder");
  }
  return full;
}

// Reads external data into a new tensor; every check runs before memory is allocated.
// Copies an in-memory external file's bytes [offset, offset + want).
Result<Tensor> read_external_memory(const onnx::TensorProto& tp, const std::map<std::string, std::string_view>& files,
                                    const std::string& location, int64_t offset, DataType dt, const Shape& shape,
                                    int64_t want) {
  fs::path loc(location);
  if (location.empty() || loc.is_absolute() || location.find("..") != std::string::npos)
    return invalid_argument("tensor '", tp.name(), "': external data location '", location,
                            "' must be a relative path inside the model's folder");
  auto it = files.find(loc.lexically_normal().generic_string());
  if (it == files.end())
    return not_found("tensor '", tp.name(), "': external data file '", location, "' is not in the package");
  std::string_view bytes = it->second;
  if (offset < 0 || static_cast<uint64_t>(offset) > bytes.size() ||
      static_cast<uint64_t>(want) > bytes.size() - static_cast<uint64_t>(offset))
    return invalid_argument("tensor '", tp.name(), "': external data file '", location, "' is ", bytes.size(),
                            " bytes, too short for offset ", offset, " + ", want, " bytes");
  Tensor t(dt, shape);
  if (want > 0) std::memcpy(t.raw_data(), bytes.data() + offset, static_cast<size_t>(want));
  return t;
}

Result<Tensor> read_external(const onnx::TensorProto& tp, const ExternalData& external, DataType dt,
                             const Shape& shape, int64_t want) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      return invalid_argument("tensor '", tp.name(), "': external data ", kv.key(), " '", kv.value(), "' is not a number");
    }
  }
  if (length >= 0 && length != want) {
    return invalid_argument("tensor '", tp.name(), "': external data length ", length, " does not match dims (", want, " bytes)");
  }
  if (external.files != nullptr)
    return read_external_memory(tp, *external.files, location, offset, dt, shape, want);
  HEARTH_ASSIGN_OR_RETURN(fs::path file, resolve_external(location, external.base_dir, tp.name()));
  std::error_code ec;
  auto fsize = fs::file_size(file, ec);
  if (ec) return not_found("tensor '", tp.name(), "': external data file '", location, "' not found");
  if (offset < 0 || static_cast<uintmax_t>(offset) + static_cast<uintmax_t>(want) > fsize) {
    return invalid_argument("tensor '", tp.name(), "': external data file '", location, "' is ", fsize,
                            " bytes, too short for offset ", offset, " + ", want, " bytes");
  }
  Tensor t(dt, shape);
  std::ifstream in(file, std::ios::binary);
  in.seekg(offset);
  in.read(static_cast<char*>(t.raw_data()), want);
  if (!in) return data_loss("tensor '", tp.name(), "': could not read external data from '", location, "'");
  return t;
}

}  // namespace

Result<Tensor> tensor_from_proto(const onnx::TensorProto& tp, const std::string& base_dir) {
  return tensor_from_proto(tp, ExternalData{base_dir, nullptr});
}

Result<Tensor> take_tensor_from_proto(onnx::TensorProto* tp, const ExternalData& external) {
  constexpr size_t kTakeAtLeast = 64 << 10;  // small tensors: copy into aligned memory as usual
  // Only floating-point weights: ONNX shape inference, which runs on `tp`'s model
  // afterwards, may read the values of integer tensors (shapes, indices).
  const auto type = tp->data_type();
  const bool floating = type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::DOUBLE ||
                        type == onnx::TensorProto::FLOAT16 || type == onnx::TensorProto::BFLOAT16;
  if (!floating || tp->data_location() == onnx::TensorProto::EXTERNAL || !tp->has_raw_data() ||
      tp->has_segment() || tp->raw_data().size() < kTakeAtLeast) {
    return tensor_from_proto(*tp, external);
  }
  // The same checks as the copying path, then the payload itself becomes the tensor's memory.
  auto payload = std::make_shared<std::string>(std::move(*tp->mutable_raw_data()));
  tp->clear_raw_data();
  const DataType dt = static_cast<DataType>(tp->data_type());
  Shape shape(tp->dims().begin(), tp->dims().end());
  auto checked = checked_nbytes(dt, shape);
  if (!checked.ok()) return checked.status().with_context(str_cat("tensor '", tp->name(), "'"));
  const size_t nbytes = *checked;
  if (payload->size() != nbytes) {
    return invalid_argument("tensor '", tp->name(), "' raw_data holds ", payload->size(), " bytes but dims ",
                            shape_str(shape), " of ", dtype_name(dt), " need ", nbytes);
  }
  void* data = payload->data();
  return Tensor::view(dt, std::move(shape), std::move(payload), data);
}

Result<Tensor> tensor_from_proto(const onnx::TensorProto& tp, const ExternalData& external) {
  const DataType dt = static_cast<DataType>(tp.data_type());
  const std::string& name = tp.name();
  if (dt == DataType::kString) return unimplemented("tensor '", name, "' has string elements, which are not supported");
  if (!dtype_is_supported(dt)) return unimplemented("tensor '", name, "' has unsupported element type ", dtype_name(dt));
  if (tp.has_segment()) return unimplemented("tensor '", name, "' is segmented, which is not supported");
  Shape shape(tp.dims().begin(), tp.dims().end());
  auto checked = checked_nbytes(dt, shape);
  if (!checked.ok()) return checked.status().with_context(str_cat("tensor '", name, "'"));
  const size_t esize = dtype_size(dt);
  const size_t nbytes = *checked;
  const int64_t numel = static_cast<int64_t>(nbytes / esize);

  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    return read_external(tp, external, dt, shape, static_cast<int64_t>(nbytes));
  }
  if (tp.has_raw_data()) {
    if (tp.raw_data().size() != nbytes) {
      return invalid_argument("tensor '", name, "' raw_data holds ", tp.raw_data().size(), " bytes but dims ",
                              shape_str(shape), " of ", dtype_name(dt), " need ", nbytes);
    }
    Tensor t(dt, shape);
    if (nbytes) std::memcpy(t.raw_data(), tp.raw_data().data(), nbytes);
    return t;
  }
  // Typed fields: check the count before allocating.
  switch (dt) {
    case DataType::kFloat: {
      HEARTH_RETURN_IF_ERROR(check_count(name, tp.float_data_size(), numel, "float_data"));
      Tensor t(dt, shape);
      copy_field<float>(tp.float_data(), t, [](float v) { return v; });
      return t;
    }
    case DataType::kDouble: {
      HEARTH_RETURN_IF_ERROR(check_count(name, tp.double_data_size(), numel, "double_data"));
      Tensor t(dt, shape);
      copy_field<double>(tp.double_data(), t, [](double v) { return v; });
      return t;
    }
    case DataType::kInt64: {
      HEARTH_RETURN_IF_ERROR(check_count(name, tp.int64_data_size(), numel, "int64_data"));
      Tensor t(dt, shape);
      copy_field<int64_t>(tp.int64_data(), t, [](int64_t v) { return v; });
      return t;
    }
    case DataType::kUInt32:
    case DataType::kUInt64: {
      HEARTH_RETURN_IF_ERROR(check_count(name, tp.uint64_data_size(), numel, "uint64_data"));
      Tensor t(dt, shape);
      if (dt == DataType::kUInt32) copy_field<uint32_t>(tp.uint64_data(), t, [](uint64_t v) { return static_cast<uint32_t>(v); });
      else copy_field<uint64_t>(tp.uint64_data(), t, [](uint64_t v) { return v; });
      return t;
    }
    default: {
      // int32_data carries int32, int16, uint16, int8, uint8, bool, float16, bfloat16.
      HEARTH_RETURN_IF_ERROR(check_count(name, tp.int32_data_size(), numel, "int32_data"));
      Tensor t(dt, shape);
      dispatch_all(
          dt,
          [&](auto tag) {
            using T = decltype(tag);
            if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
              copy_field<T>(tp.int32_data(), t, [](int32_t v) { return T{static_cast<uint16_t>(v)}; });
            } else {
              copy_field<T>(tp.int32_data(), t, [](int32_t v) { return static_cast<T>(v); });
            }
            return 0;
          },
          [] { return 0; });
      return t;
    }
  }
}

void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* tp) {
  tp->set_name(name);
  tp->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) tp->add_dims(d);
  tp->set_raw_data(t.raw_data(), t.nbytes());
}

}  // namespace hearth
