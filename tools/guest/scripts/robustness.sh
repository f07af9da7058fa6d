# The VMM's robustness test: on the guest's first boot only, misbehave as
# a broken or hostile guest would. Hammer ports no device answers, flood
# the console, then crash the kernel (panic=-1 makes it ask the board for
# a reset). The VMM must absorb all of it and boot the guest again, which
# then sees bulkhead.boot=2 and behaves.
if grep -q 'bulkhead.boot=1' /proc/cmdline; then
    echo "robustness: hammering 8192 unknown ports"
    dd if=/dev/zero of=/dev/port bs=1 seek=4096 count=8192 2>/dev/null
    dd if=/dev/port of=/dev/null bs=1 skip=4096 count=8192 2>/dev/null
    echo "robustness: flooding the console"
    i=0
    while [ $i -lt 300 ]; do
        echo "flood $i ................................................................"
        i=$((i + 1))
    done
    echo "robustness: crashing the kernel"
    echo c > /proc/sysrq-trigger
fi
echo "robustness: boot $(sed 's/.*bulkhead.boot=\([0-9]*\).*/\1/' /proc/cmdline) is well"
