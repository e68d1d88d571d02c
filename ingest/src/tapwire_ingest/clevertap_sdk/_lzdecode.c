/* lz-string's _decompress over the bits of a byte string, for the Web SDK's `d` parameter (see lz.py).
 *
 * In C because this loop runs once per code on every Web SDK request, where the Python loop cost about a
 * quarter of the request's CPU. Every dictionary entry is a run of the output written so far (the entry the
 * coder adds after each code is the previous output entry plus the first unit of this one), so the dictionary
 * is an array of (start, length) pairs into the output and decoding copies no strings.
 *
 * Hostile input: the output stops at `max_chars` UTF-16 code units while it grows, the dictionary holds at
 * most one entry per three bits of input (every code is at least three bits), and a stream that runs out
 * before its end marker, names no entry or holds an unpaired surrogate is refused, never returned short.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Outcomes other than a text; lz.py turns them into its exceptions. */
enum { LZ_TRUNCATED = 1, LZ_NO_LITERAL = 2, LZ_UNKNOWN_CODE = 3, LZ_TOO_LARGE = 4, LZ_SURROGATE = 5 };

typedef struct {
    const uint8_t *data;
    Py_ssize_t total_bits;
    Py_ssize_t position;
} Bits;

/* `width` bits (at most 30), the first read the least significant; -1 when the stream ends first. */
static long long read_bits(Bits *bits, int width) {
    if (bits->position + width > bits->total_bits) {
        return -1;
    }
    long long value = 0;
    Py_ssize_t position = bits->position;
    for (int power = 0; power < width; power++, position++) {
        value |= (long long)((bits->data[position >> 3] >> (7 - (position & 7))) & 1) << power;
    }
    bits->position = position;
    return value;
}

typedef struct {
    uint16_t *units;
    Py_ssize_t length;
    Py_ssize_t capacity;
    Py_ssize_t max_chars;
    int surrogates;
} Output;

/* Room for `more` units; LZ_TOO_LARGE past the cap, -1 when memory runs out. */
static int reserve(Output *out, Py_ssize_t more) {
    if (more > out->max_chars - out->length) {
        return LZ_TOO_LARGE;
    }
    Py_ssize_t needed = out->length + more;
    if (needed <= out->capacity) {
        return 0;
    }
    Py_ssize_t capacity = out->capacity * 2 > needed ? out->capacity * 2 : needed;
    if (capacity > out->max_chars) {
        capacity = out->max_chars;
    }
    uint16_t *grown = PyMem_Realloc(out->units, (size_t)capacity * sizeof(uint16_t));
    if (grown == NULL) {
        return -1;
    }
    out->units = grown;
    out->capacity = capacity;
    return 0;
}

typedef struct {
    Py_ssize_t start;
    Py_ssize_t length;
} Entry;

/* The code units of the stream, or an LZ_* outcome; -1 with a Python exception set on memory exhaustion. */
static int decode(Bits *bits, Output *out, Entry *dictionary, Py_ssize_t dictionary_capacity) {
    long long first = read_bits(bits, 2);
    if (first < 0) {
        return LZ_TRUNCATED;
    }
    if (first == 2) {
        return 0;
    }
    if (first == 3) {
        return LZ_NO_LITERAL;
    }
    long long literal = read_bits(bits, first == 0 ? 8 : 16);
    if (literal < 0) {
        return LZ_TRUNCATED;
    }
    int failed = reserve(out, 1);
    if (failed) {
        return failed;
    }
    out->units[out->length] = (uint16_t)literal;
    out->surrogates |= literal >= 0xD800 && literal <= 0xDFFF;
    /* Codes 0-2 are the literal and end markers, never dictionary entries. */
    Py_ssize_t size = 4;
    dictionary[3] = (Entry){out->length, 1};
    Entry w = dictionary[3];
    out->length = 1;
    long long enlarge_in = 4;
    int num_bits = 3;
    for (;;) {
        long long code = read_bits(bits, num_bits);
        if (code < 0) {
            return LZ_TRUNCATED;
        }
        Entry entry;
        if (code == 2) {
            return 0;
        }
        if (code < 2) {
            literal = read_bits(bits, code == 0 ? 8 : 16);
            if (literal < 0) {
                return LZ_TRUNCATED;
            }
            failed = reserve(out, 1);
            if (failed) {
                return failed;
            }
            out->units[out->length] = (uint16_t)literal;
            out->surrogates |= literal >= 0xD800 && literal <= 0xDFFF;
            entry = (Entry){out->length, 1};
            if (size >= dictionary_capacity) {
                return LZ_UNKNOWN_CODE; /* cannot happen: one entry per three bits at most */
            }
            dictionary[size++] = entry;
            if (--enlarge_in == 0) {
                enlarge_in = 1LL << num_bits;
                num_bits++;
            }
            out->length += 1;
        } else if (code < size) {
            entry = dictionary[code];
            failed = reserve(out, entry.length);
            if (failed) {
                return failed;
            }
            /* An entry is output already written, wholly before the place it is copied to. */
            memcpy(out->units + out->length, out->units + entry.start, (size_t)entry.length * sizeof(uint16_t));
            entry.start = out->length;
            out->length += entry.length;
        } else if (code == size) {
            /* The entry the coder was still building: w followed by its own first unit. */
            failed = reserve(out, w.length + 1);
            if (failed) {
                return failed;
            }
            memcpy(out->units + out->length, out->units + w.start, (size_t)w.length * sizeof(uint16_t));
            out->units[out->length + w.length] = out->units[w.start];
            entry = (Entry){out->length, w.length + 1};
            out->length += entry.length;
        } else {
            return LZ_UNKNOWN_CODE;
        }
        /* w plus the first unit of this entry: the units that follow w in the output. */
        if (size >= dictionary_capacity) {
            return LZ_UNKNOWN_CODE; /* cannot happen: one entry per three bits at most */
        }
        dictionary[size++] = (Entry){w.start, w.length + 1};
        w = entry;
        if (--enlarge_in == 0) {
            enlarge_in = 1LL << num_bits;
            num_bits++;
            if (num_bits > 30) {
                /* Past 2^30 entries: more bits of codes than any stream handed here has. */
                return LZ_UNKNOWN_CODE;
            }
        }
    }
}

static PyObject *text_of(Output *out) {
    if (!out->surrogates) {
        return PyUnicode_FromKindAndData(PyUnicode_2BYTE_KIND, out->units, out->length);
    }
#if PY_BIG_ENDIAN
    int byteorder = 1;
#else
    int byteorder = -1;
#endif
    /* Pairs become one character; an unpaired surrogate is refused. */
    PyObject *text = PyUnicode_DecodeUTF16(
        (const char *)out->units, out->length * (Py_ssize_t)sizeof(uint16_t), "strict", &byteorder);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return PyLong_FromLong(LZ_SURROGATE);
    }
    return text;
}

static PyObject *decompress(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decompress(raw: bytes, max_chars: int)");
        return NULL;
    }
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[1]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (max_chars < 1) {
        PyErr_SetString(PyExc_ValueError, "max_chars must be positive");
        return NULL;
    }
    Bits bits = {(const uint8_t *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]) * 8, 0};
    if (bits.total_bits / 8 != PyBytes_GET_SIZE(args[0])) {
        PyErr_SetString(PyExc_OverflowError, "raw is too long");
        return NULL;
    }
    Py_ssize_t dictionary_capacity = bits.total_bits / 3 + 8;
    Entry *dictionary = PyMem_Malloc((size_t)dictionary_capacity * sizeof(Entry));
    Py_ssize_t initial = PyBytes_GET_SIZE(args[0]) * 2 + 16;
    Output out = {NULL, 0, 0, max_chars, 0};
    out.capacity = initial < max_chars ? initial : max_chars;
    out.units = PyMem_Malloc((size_t)out.capacity * sizeof(uint16_t));
    PyObject *result = NULL;
    if (dictionary == NULL || out.units == NULL) {
        PyErr_NoMemory();
    } else {
        int outcome = decode(&bits, &out, dictionary, dictionary_capacity);
        if (outcome == -1) {
            PyErr_NoMemory();
        } else if (outcome != 0) {
            result = PyLong_FromLong(outcome);
        } else {
            result = text_of(&out);
        }
    }
    PyMem_Free(dictionary);
    PyMem_Free(out.units);
    return result;
}

static PyMethodDef methods[] = {
    {"decompress", (PyCFunction)(void (*)(void))decompress, METH_FASTCALL,
     "decompress(raw, max_chars) -> str, or an int naming why the stream is refused"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lzdecode", NULL, 0, methods};

PyMODINIT_FUNC PyInit__lzdecode(void) { return PyModule_Create(&module); }
