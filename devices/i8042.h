#ifndef MINIVMM_I8042_H
#define MINIVMM_I8042_H
struct vm;
int i8042_init(struct vm *vm) __attribute__((warn_unused_result));
#endif
