/* The native reference's command line, shared by echo.c and pingpong.c:
 * each flag is "--name value" or "--name=value". */
#ifndef IOLAB_FLAGS_H
#define IOLAB_FLAGS_H

#include <string.h>

/* argv[*i]'s flag name into flag (size bytes, NUL-terminated) and its value:
 * what follows '=', else the next argument (*i moves past it), else NULL.
 * Returns 0, or -1 when the name does not fit (no flag is that long). */
static inline int next_flag(int argc, char **argv, int *i, char *flag, size_t size, const char **value) {
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (len >= size)
        return -1;
    memcpy(flag, arg, len);
    flag[len] = 0;
    *value = eq ? eq + 1 : *i + 1 < argc ? argv[++*i] : NULL;
    return 0;
}

#endif
