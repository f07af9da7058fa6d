//! channels/right: the judge and the parent of left and flooder. Reads
//! left's pings and answers with its own stream of pongs, and drains the
//! flooder's ring, where nothing may be accepted. Passes when all N pings
//! and left's DONE arrived in order, and each of the flooder's record
//! attacks was rejected exactly ROUNDS times under its own kind. A fault
//! of either child fails the test.

#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

use bulkhead_channel::{Receiver, RecvError, Sender};
use bulkhead_channel_test_pds::{
    ping, pong, ring, DONE, JUNK_SLOT, N, PING_SLOT, PONG_SLOT, ROUNDS,
};
use bulkhead_microkit::{
    debug_println, protection_domain, setvar, Channel, ChannelSet, Child, FaultInfo, Handler,
};
use bulkhead_protocols::supervisor::Report;
use bulkhead_protocols::vmi::{MonitorToVmm, VmmToMonitor};
use bulkhead_test_pds::{fail, pass};

setvar!(rx_ping_header);
setvar!(rx_ping_header_size);
setvar!(rx_ping_data);
setvar!(rx_ping_data_size);
setvar!(tx_pong_header);
setvar!(tx_pong_header_size);
setvar!(tx_pong_data);
setvar!(tx_pong_data_size);
setvar!(rx_junk_header);
setvar!(rx_junk_header_size);
setvar!(rx_junk_data);
setvar!(rx_junk_data_size);

const LEFT: Channel = Channel::new(1);
const FLOODER: Channel = Channel::new(2);
const T: &str = "channels";

struct Right {
    rx: Receiver<'static, MonitorToVmm, PING_SLOT, bulkhead_microkit::Channel>,
    tx: Sender<'static, VmmToMonitor, PONG_SLOT, bulkhead_microkit::Channel>,
    junk: Receiver<'static, Report, JUNK_SLOT, bulkhead_microkit::Channel>,
    got: u32,
    sent: u32,
    left_done: bool,
    over: bool,
}

impl Right {
    fn pump(&mut self, from: ChannelSet) {
        if self.over {
            return;
        }
        if from.contains(LEFT) {
            loop {
                match self.rx.recv() {
                    Ok(m) if self.got < N && m == ping(self.got) => self.got += 1,
                    Ok(m) if self.got == N && m == ping(DONE) => self.left_done = true,
                    Ok(_) => {
                        let got = self.got;
                        return self.fail(format_args!("ping {got} out of order"));
                    }
                    Err(RecvError::Empty) => break,
                    Err(e) => return self.fail(format_args!("ping rejected: {e:?}")),
                }
            }
            while self.sent < N && self.tx.send(&pong(self.sent)).is_ok() {
                self.sent += 1;
            }
        }
        if from.contains(FLOODER) {
            loop {
                match self.junk.recv() {
                    Ok(_) => return self.fail(format_args!("a hostile record was accepted")),
                    // Nothing is consumed on these: wait for the flooder
                    // to undo its index jump (its next strike does).
                    Err(RecvError::Empty | RecvError::IndexOutOfRange | RecvError::WrongLayout) => {
                        break
                    }
                    Err(_) => {}
                }
            }
        }
        let s = self.junk.stats();
        let kinds = [
            s.bad_check,
            s.bad_length,
            s.bad_sequence,
            s.wrong_protocol,
            s.wrong_version,
            s.malformed,
        ];
        if kinds.iter().any(|&k| k > ROUNDS) || s.wrong_layout != 0 || s.delivered != 0 {
            return self.fail(format_args!("junk counted wrongly: {s:?}"));
        }
        if self.left_done
            && self.sent == N
            && kinds.iter().all(|&k| k == ROUNDS)
            && s.index_out_of_range > 0
        {
            self.over = true;
            let good = self.rx.stats();
            debug_println!(
                "right: {N} pings and {N} pongs delivered in order; junk rejected: {} bad check, {} bad length, {} bad sequence, {} wrong protocol, {} wrong version, {} malformed, {} index jumps seen; good rings rejected {}",
                s.bad_check, s.bad_length, s.bad_sequence, s.wrong_protocol, s.wrong_version, s.malformed, s.index_out_of_range, good.rejected()
            );
            if good.rejected() != 0 {
                return fail(
                    T,
                    format_args!("the ping ring rejected {} records", good.rejected()),
                );
            }
            pass(T);
        }
    }

    fn fail(&mut self, why: core::fmt::Arguments) {
        self.over = true;
        fail(T, format_args!("right: {why}"));
    }
}

fn init() -> Right {
    let rx = Receiver::new(
        ring(
            &rx_ping_header,
            &rx_ping_header_size,
            &rx_ping_data,
            &rx_ping_data_size,
        ),
        LEFT,
    );
    let tx = Sender::new(
        ring(
            &tx_pong_header,
            &tx_pong_header_size,
            &tx_pong_data,
            &tx_pong_data_size,
        ),
        LEFT,
    );
    let junk = Receiver::new(
        ring(
            &rx_junk_header,
            &rx_junk_header_size,
            &rx_junk_data,
            &rx_junk_data_size,
        ),
        FLOODER,
    );
    let (Ok(rx), Ok(tx), Ok(junk)) = (rx, tx, junk) else {
        panic!("right: ring layout")
    };
    let mut r = Right {
        rx,
        tx,
        junk,
        got: 0,
        sent: 0,
        left_done: false,
        over: false,
    };
    // Start the pong stream; pings are read once left says they are there
    // (reading before left wrote the ring's header would count a layout error).
    while r.sent < N && r.tx.send(&pong(r.sent)).is_ok() {
        r.sent += 1;
    }
    r
}

impl Handler for Right {
    type Error = core::convert::Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.pump(channels);
        Ok(())
    }

    fn fault(&mut self, child: Child, info: FaultInfo) -> Result<(), Self::Error> {
        self.fail(format_args!(
            "child {} faulted ({:?} at {:#x}, ip {:#x})",
            child.index(),
            info.kind,
            info.address,
            info.ip
        ));
        Ok(())
    }
}

protection_domain!(init);
