#include "cli/inputs.h"

#include <random>

#include "core/npy.h"

namespace hearth::cli {

Result<Feeds> load_input_args(const std::vector<std::string>& args, const std::vector<ValueInfo>& inputs) {
  Feeds feeds;
  for (const auto& a : args) {
    std::string name, file;
    auto eq = a.find('=');
    if (eq == std::string::npos) {
      if (inputs.size() != 1) {
        return invalid_argument("--input '", a, "' needs NAME=FILE.npy: the model has ", inputs.size(), " inputs");
      }
      name = inputs[0].name;
      file = a;
    } else {
      name = a.substr(0, eq);
      file = a.substr(eq + 1);
    }
    HEARTH_ASSIGN_OR_RETURN(Tensor t, read_npy(file));
    feeds.emplace_back(name, std::move(t));
  }
  return feeds;
}

Result<std::map<std::string, Shape>> parse_shape_args(const std::vector<std::string>& args) {
  std::map<std::string, Shape> out;
  for (const auto& a : args) {
    auto eq = a.find('=');
    if (eq == std::string::npos) return invalid_argument("--shape '", a, "' must look like NAME=1x3x224x224");
    Shape s;
    std::string dims = a.substr(eq + 1);
    size_t pos = 0;
    while (pos <= dims.size()) {
      size_t x = dims.find('x', pos);
      std::string d = dims.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
      if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos || d.size() > 12) {
        return invalid_argument("--shape '", a, "': '", d, "' is not a dimension");
      }
      s.push_back(std::stoll(d));
      if (x == std::string::npos) break;
      pos = x + 1;
    }
    out[a.substr(0, eq)] = s;
  }
  return out;
}

Result<Feeds> random_inputs(const std::vector<ValueInfo>& inputs, const Feeds& feeds, int64_t batch,
                            const std::map<std::string, Shape>& shapes, uint32_t seed) {
  Feeds out = feeds;
  std::mt19937 rng(seed);
  for (const auto& in : inputs) {
    bool given = false;
    for (const auto& f : feeds) given |= f.first == in.name;
    if (given) continue;
    Shape shape;
    if (auto it = shapes.find(in.name); it != shapes.end()) {
      shape = it->second;
    } else {
      if (!in.has_shape) return invalid_argument("input '", in.name, "' has no declared shape; pass --shape ", in.name, "=...");
      for (size_t i = 0; i < in.dims.size(); ++i) shape.push_back(in.dims[i] >= 0 ? in.dims[i] : (i == 0 ? batch : 1));
    }
    DataType dt = in.dtype == DataType::kUndefined ? DataType::kFloat : in.dtype;
    Tensor t(dt, shape);
    std::uniform_real_distribution<double> real(-1.0, 1.0);
    std::uniform_int_distribution<int> integer(0, 99);
    auto ok = dispatch_all(
        dt,
        [&](auto tag) {
          using T = decltype(tag);
          T* d = t.data<T>();
          for (int64_t i = 0; i < t.numel(); ++i) {
            if constexpr (std::is_same_v<T, Float16>) d[i] = Float16{float_to_half(static_cast<float>(real(rng)))};
            else if constexpr (std::is_same_v<T, BFloat16>) d[i] = BFloat16{float_to_bfloat16(static_cast<float>(real(rng)))};
            else if constexpr (std::is_same_v<T, bool>) d[i] = integer(rng) % 2;
            else if constexpr (std::is_floating_point_v<T>) d[i] = static_cast<T>(real(rng));
            else d[i] = static_cast<T>(integer(rng));
          }
          return true;
        },
        [] { return false; });
    if (!ok) return unimplemented("cannot make random data of type ", dtype_name(dt), " for input '", in.name, "'");
    out.emplace_back(in.name, std::move(t));
  }
  return out;
}

}  // namespace hearth::cli
