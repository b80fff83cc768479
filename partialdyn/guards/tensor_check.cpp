// A tensor guard's metadata checks read from the C++ tensor (guards/native.py builds and loads this file).
//
// `make_spec(example, kind)` records what a guard of `kind` assumes about tensors like `example`;
// `tensor_ok(value, spec)` answers the same question as the Python terms `kinds.tensor_terms` writes for
// it, without a Python attribute lookup or getter call per property.  Only exact torch.Tensor and
// nn.Parameter get a spec (guards/native.py): their methods are TensorBase's own, so nothing a subclass
// overrides in Python is skipped.  Any C++ exception (a sparse tensor has no strides) means "no match",
// as an exception in a Python guard does.
#include <Python.h>
#include <torch/csrc/autograd/python_variable.h>

#include <vector>

namespace {

constexpr const char* kCapsuleName = "partialdyn.TensorSpec";

// What a guard kind pins beyond type, dtype, device, requires_grad and inference-ness.
enum Kind : long { kRank = 0, kContiguous = 1, kExact = 2 };

struct Spec {
  PyTypeObject* type;          // a strong reference, released with the capsule
  at::ScalarType dtype;
  at::Device device;
  bool requires_grad;
  bool inference;
  bool complex;
  bool conj;
  bool neg;
  Kind kind;
  int64_t ndim;
  std::vector<int64_t> sizes;    // kExact only
  std::vector<int64_t> strides;  // kExact only
  int64_t storage_offset;        // kExact only
};

void free_spec(PyObject* capsule) {
  auto* spec = static_cast<Spec*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (spec != nullptr) {
    Py_DECREF(reinterpret_cast<PyObject*>(spec->type));
    delete spec;
  }
}

bool matches(const Spec& spec, const at::Tensor& t) {
  if (t.scalar_type() != spec.dtype || t.device() != spec.device || t.requires_grad() != spec.requires_grad ||
      t.is_inference() != spec.inference || t.dim() != spec.ndim) {
    return false;
  }
  if (spec.complex && (t.is_conj() != spec.conj || t.is_neg() != spec.neg)) {
    return false;
  }
  switch (spec.kind) {
    case kRank:
      return true;
    case kContiguous:
      return t.is_contiguous() && t.storage_offset() == 0;
    case kExact:
      return t.sizes().vec() == spec.sizes && t.strides().vec() == spec.strides &&
             t.storage_offset() == spec.storage_offset;
  }
  return false;
}

PyObject* make_spec(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !THPVariable_Check(args[0]) || !PyLong_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "make_spec(tensor, kind)");
    return nullptr;
  }
  long kind = PyLong_AsLong(args[1]);
  if (kind != kRank && kind != kContiguous && kind != kExact) {
    PyErr_SetString(PyExc_ValueError, "make_spec: unknown kind");
    return nullptr;
  }
  try {
    const at::Tensor& t = THPVariable_Unpack(args[0]);
    auto* spec = new Spec{Py_TYPE(args[0]), t.scalar_type(), t.device(), t.requires_grad(), t.is_inference(),
                          t.is_complex(), t.is_conj(), t.is_neg(), static_cast<Kind>(kind), t.dim(), {}, {}, 0};
    if (kind == kExact) {
      spec->sizes = t.sizes().vec();
      spec->strides = t.strides().vec();
      spec->storage_offset = t.storage_offset();
    }
    Py_INCREF(reinterpret_cast<PyObject*>(spec->type));
    PyObject* capsule = PyCapsule_New(spec, kCapsuleName, free_spec);
    if (capsule == nullptr) {
      Py_DECREF(reinterpret_cast<PyObject*>(spec->type));
      delete spec;
    }
    return capsule;
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_ValueError, error.what());
    return nullptr;
  }
}

PyObject* tensor_ok(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "tensor_ok(value, spec)");
    return nullptr;
  }
  auto* spec = static_cast<Spec*>(PyCapsule_GetPointer(args[1], kCapsuleName));
  if (spec == nullptr) {
    return nullptr;
  }
  if (Py_TYPE(args[0]) != spec->type) {   // the spec's type is a tensor type: the value is a tensor
    Py_RETURN_FALSE;
  }
  try {
    if (matches(*spec, THPVariable_Unpack(args[0]))) {
      Py_RETURN_TRUE;
    }
  } catch (...) {
  }
  Py_RETURN_FALSE;
}

PyMethodDef methods[] = {
    {"make_spec", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(make_spec)), METH_FASTCALL,
     "make_spec(tensor, kind): what a tensor guard of `kind` assumes about tensors like this one."},
    {"tensor_ok", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(tensor_ok)), METH_FASTCALL,
     "tensor_ok(value, spec): whether `value` is a tensor the spec's guard accepts."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "partialdyn_tensor_check", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit_partialdyn_tensor_check() {
  return PyModule_Create(&module);
}
