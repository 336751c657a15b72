//! ST LSM9DS1 (accelerometer + gyroscope part; the magnetometer is a separate device on
//! the bus and is not used) over an embedded-hal 1.0 I2C bus.
//!
//! Registers used (accelerometer/gyroscope address space):
//!
//! | register       | addr | use                                                        |
//! |----------------|------|------------------------------------------------------------|
//! | `WHO_AM_I`     | 0x0F | reads 0x68                                                 |
//! | `CTRL_REG1_G`  | 0x10 | ODR_G \[7:5\], FS_G \[4:3\], BW_G \[1:0\]                  |
//! | `OUT_X_L_G`    | 0x18 | gyroscope X, Y, Z: six bytes, low byte first, two's complement |
//! | `CTRL_REG4`    | 0x1E | gyroscope axis enables Zen/Yen/Xen \[5:3\]                  |
//! | `CTRL_REG5_XL` | 0x1F | accelerometer axis enables \[5:3\]                          |
//! | `CTRL_REG6_XL` | 0x20 | ODR_XL \[7:5\], FS_XL \[4:3\]                               |
//! | `CTRL_REG8`    | 0x22 | BDU \[6\] (block data update), IF_ADD_INC \[2\] (auto-increment) |
//! | `OUT_X_L_XL`   | 0x28 | accelerometer X, Y, Z: six bytes as the gyroscope's        |
//!
//! With the gyroscope on, the accelerometer runs at the gyroscope's output data rate
//! (`CTRL_REG1_G`); the driver writes the same rate code to both registers.

use embedded_hal::i2c::I2c;

use crate::{head, Error, SampleSource, STANDARD_GRAVITY};

const WHO_AM_I: u8 = 0x0F;
const WHO_AM_I_AG: u8 = 0x68;
const CTRL_REG1_G: u8 = 0x10;
const OUT_X_L_G: u8 = 0x18;
const CTRL_REG4: u8 = 0x1E;
const CTRL_REG5_XL: u8 = 0x1F;
const CTRL_REG6_XL: u8 = 0x20;
const CTRL_REG8: u8 = 0x22;
const OUT_X_L_XL: u8 = 0x28;

/// `CTRL_REG8`: block data update (the two bytes of a value come from one sample) and
/// register address auto-increment (one read fetches X, Y, Z).
const CTRL_REG8_BDU_IF_ADD_INC: u8 = 0x44;
/// `CTRL_REG4` / `CTRL_REG5_XL`: all three axes on (the reset value, written anyway).
const AXES_XYZ: u8 = 0x38;

/// Output data rate of the gyroscope (and of the accelerometer, which follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Odr {
    /// 14.9 Hz.
    Hz14_9 = 1,
    /// 59.5 Hz.
    Hz59_5 = 2,
    /// 119 Hz.
    Hz119 = 3,
    /// 238 Hz.
    Hz238 = 4,
    /// 476 Hz.
    Hz476 = 5,
    /// 952 Hz.
    Hz952 = 6,
}

/// Accelerometer full scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AccelRange {
    /// ±2 g, 0.061 mg/LSB.
    G2,
    /// ±4 g, 0.122 mg/LSB.
    G4,
    /// ±8 g, 0.244 mg/LSB.
    G8,
    /// ±16 g, 0.732 mg/LSB.
    G16,
}

impl AccelRange {
    /// The FS_XL field: ±2 g is 00, ±16 g 01, ±4 g 10, ±8 g 11.
    fn bits(self) -> u8 {
        match self {
            AccelRange::G2 => 0b00,
            AccelRange::G16 => 0b01,
            AccelRange::G4 => 0b10,
            AccelRange::G8 => 0b11,
        }
    }

    /// Sensitivity in g per LSB.
    pub fn g_per_lsb(self) -> f32 {
        match self {
            AccelRange::G2 => 0.061e-3,
            AccelRange::G4 => 0.122e-3,
            AccelRange::G8 => 0.244e-3,
            AccelRange::G16 => 0.732e-3,
        }
    }
}

/// Gyroscope full scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GyroRange {
    /// ±245 °/s, 8.75 m°/s per LSB.
    Dps245,
    /// ±500 °/s, 17.50 m°/s per LSB.
    Dps500,
    /// ±2000 °/s, 70 m°/s per LSB.
    Dps2000,
}

impl GyroRange {
    /// The FS_G field: 245 °/s is 00, 500 °/s 01, 2000 °/s 11.
    fn bits(self) -> u8 {
        match self {
            GyroRange::Dps245 => 0b00,
            GyroRange::Dps500 => 0b01,
            GyroRange::Dps2000 => 0b11,
        }
    }

    /// Sensitivity in degrees per second per LSB.
    pub fn dps_per_lsb(self) -> f32 {
        match self {
            GyroRange::Dps245 => 8.75e-3,
            GyroRange::Dps500 => 17.5e-3,
            GyroRange::Dps2000 => 70e-3,
        }
    }
}

/// Settings written at [`Lsm9ds1::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lsm9ds1Config {
    /// Output data rate of both parts.
    pub odr: Odr,
    /// Accelerometer full scale.
    pub accel: AccelRange,
    /// Gyroscope full scale.
    pub gyro: GyroRange,
}

impl Default for Lsm9ds1Config {
    /// 119 Hz (well above the 10 Hz the activity model samples, so the latest sample is
    /// always fresh), ±8 g and ±2000 °/s: BasicMotions' linear accelerations reach 30
    /// m/s² (3 g, plus 1 g of gravity before it is removed) and its angular rates 34.9
    /// rad/s, i.e. the 2000 °/s limit of the recording watch's own gyroscope.
    fn default() -> Self {
        Lsm9ds1Config {
            odr: Odr::Hz119,
            accel: AccelRange::G8,
            gyro: GyroRange::Dps2000,
        }
    }
}

/// The LSM9DS1's accelerometer and gyroscope: a [`SampleSource`] of 6 channels,
/// acceleration X, Y, Z in m/s² (gravity included) then angular rate X, Y, Z in rad/s.
pub struct Lsm9ds1<I2C> {
    i2c: I2C,
    address: u8,
    config: Lsm9ds1Config,
    m_s2_per_lsb: f32,
    rad_s_per_lsb: f32,
}

impl<I2C: I2c> Lsm9ds1<I2C> {
    /// Accelerometer/gyroscope address with SDO_A/G pulled high (as on the Arduino Nano 33
    /// BLE, rev. 1).
    pub const ADDRESS_SDO_HIGH: u8 = 0x6B;
    /// Accelerometer/gyroscope address with SDO_A/G low.
    pub const ADDRESS_SDO_LOW: u8 = 0x6A;

    /// Checks `WHO_AM_I` at `address` and configures the part: block data update and
    /// address auto-increment, all axes on, `config`'s rate and full scales.
    pub fn new(
        mut i2c: I2C,
        address: u8,
        config: Lsm9ds1Config,
    ) -> Result<Self, Error<I2C::Error>> {
        let mut id = [0u8];
        i2c.write_read(address, &[WHO_AM_I], &mut id)
            .map_err(Error::Bus)?;
        if id[0] != WHO_AM_I_AG {
            return Err(Error::WrongDevice {
                got: id[0],
                expected: WHO_AM_I_AG,
            });
        }
        let odr = (config.odr as u8) << 5;
        for (reg, value) in [
            (CTRL_REG8, CTRL_REG8_BDU_IF_ADD_INC),
            (CTRL_REG4, AXES_XYZ),
            (CTRL_REG5_XL, AXES_XYZ),
            (CTRL_REG1_G, odr | config.gyro.bits() << 3),
            (CTRL_REG6_XL, odr | config.accel.bits() << 3),
        ] {
            i2c.write(address, &[reg, value]).map_err(Error::Bus)?;
        }
        Ok(Lsm9ds1 {
            i2c,
            address,
            config,
            m_s2_per_lsb: config.accel.g_per_lsb() * STANDARD_GRAVITY,
            rad_s_per_lsb: config.gyro.dps_per_lsb() * (core::f32::consts::PI / 180.0),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> Lsm9ds1Config {
        self.config
    }

    /// The latest raw sample: accelerometer X, Y, Z then gyroscope X, Y, Z, in LSB.
    pub fn read_raw(&mut self) -> Result<[i16; 6], Error<I2C::Error>> {
        let mut raw = [0i16; 6];
        for (reg, dst) in [(OUT_X_L_XL, 0), (OUT_X_L_G, 3)] {
            let mut b = [0u8; 6];
            self.i2c
                .write_read(self.address, &[reg], &mut b)
                .map_err(Error::Bus)?;
            for (i, v) in b.chunks_exact(2).enumerate() {
                raw[dst + i] = i16::from_le_bytes([v[0], v[1]]);
            }
        }
        Ok(raw)
    }

    /// The bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }
}

impl<I2C: I2c> SampleSource for Lsm9ds1<I2C> {
    type BusError = I2C::Error;
    const CHANNELS: usize = 6;

    /// The latest sample (the part samples at its own rate; pace the reads with
    /// [`crate::Paced`]): m/s² then rad/s.
    fn read(&mut self, out: &mut [f32]) -> Result<(), Error<I2C::Error>> {
        let out = head(out, 6)?;
        let raw = self.read_raw()?;
        for (i, (y, r)) in out.iter_mut().zip(raw).enumerate() {
            let scale = if i < 3 {
                self.m_s2_per_lsb
            } else {
                self.rad_s_per_lsb
            };
            *y = r as f32 * scale;
        }
        Ok(())
    }
}
