// Stillflow preview: texel fetches and Euler integration shared by loop_preview and motion_overlay.
// Body only: each consumer's prelude declares these inputs (GPUShaderCreateInfo in addon/preview.py,
// a GLSL prelude in the headless tests). Constants come from Python as uniforms, never retyped here.
//
// Inputs:
//   image_tex   sampler2D  (W, H) RGBA image, values as stored (linear light in Blender)
//   motion_tex  sampler2D  (w, h) RG motion M, px/frame at the motion texture's own resolution,
//                          not yet multiplied by the mask or the speed (algorithm.md §1.2 step 1)
//   mask_tex    sampler2D  (w', h') R = animate weight S in [0, 1] (1 = animate), any resolution
//   speed       float      multiplies the motion field (RenderOptions.speed), x
//   base_tex    sampler2D  (W, H) RGBA base of the image for swaying regions (loop_preview.frag.glsl)
//   sway_tex    sampler2D  (W, 4 H) RGBA: the swaying regions' layers stacked, layer l in rows l H .. l H + H - 1,
//                          each (C.x, C.y, S.x, S.y) in image px, texel space (y up): C = A u cos(phi),
//                          S = A u sin(phi) of stages/sway.py's SwayLayer (addon/core/preview_sway.py builds it)
//   sway_cycles ivec4      k of layers 0-3, whole oscillation cycles per loop; 0 = the layer is unused;
//                          -k = a shimmer's layer (k cycles; its detail stays in place, stages/sway_warp.py)
//   frames      int        loop length N (RenderOptions.frames), frames
//
// Convention (texel space): x = column, y = texture row, pixel centres at integer coordinates;
// rows run bottom-up as Blender's image textures do, so motion channel 1 points up. The Python
// side (addon/core/preview_math.py) converts top-down backend arrays into this layout.

const float SF_TAU = 6.283185307179586;

// Round half to even, as torch.round / numpy.round do in the engine's integrator
// (algorithm.md §1.2 step 3: one rounding rule everywhere). roundEven() is avoided on purpose:
// not every Blender backend's GLSL translation provides it.
float sf_round_even(float v)
{
    float r = floor(v + 0.5);
    if (r - v == 0.5 && mod(r, 2.0) != 0.0) {
        r -= 1.0;
    }
    return r;
}

// Reflect an index into [0, n) without repeating the edge pixel, periodically: the engine's
// reflect padding (stages/padding.py) extended to any distance.
int sf_reflect(int i, int n)
{
    if (n <= 1) {
        return 0;
    }
    int period = 2 * (n - 1);
    int folded = i - period * int(floor(float(i) / float(period)));
    return folded < n ? folded : period - folded;
}

ivec2 sf_reflect2(ivec2 texel, ivec2 size)
{
    return ivec2(sf_reflect(texel.x, size.x), sf_reflect(texel.y, size.y));
}

// Image pixel position of texture coordinate uv. Positions within 1/1000 px of a pixel centre are
// snapped onto it: interpolated uv is not exact, and at 1:1 zoom (and in the headless tests) the
// snap makes still pixels bit-exact copies and keeps the Euler walk's rounding ties stable.
vec2 sf_pixel_position(vec2 texcoord)
{
    vec2 p = texcoord * vec2(textureSize(image_tex, 0)) - 0.5;
    vec2 centre = floor(p + 0.5);
    return mix(p, centre, vec2(lessThan(abs(p - centre), vec2(1e-3))));
}

// Texel-space position of image pixel p inside a texture of another resolution.
vec2 sf_rescale(vec2 p, ivec2 from_size, ivec2 to_size)
{
    if (from_size == to_size) {
        return p;
    }
    return (p + 0.5) * vec2(to_size) / vec2(from_size) - 0.5;
}

// Bilinear image value at image pixel p, reflected outside the image.
vec4 sf_image_bilinear(vec2 p)
{
    ivec2 size = textureSize(image_tex, 0);
    vec2 base = floor(p);
    vec2 f = p - base;
    ivec2 i0 = ivec2(base);
    vec4 c00 = texelFetch(image_tex, sf_reflect2(i0, size), 0);
    vec4 c10 = texelFetch(image_tex, sf_reflect2(i0 + ivec2(1, 0), size), 0);
    vec4 c01 = texelFetch(image_tex, sf_reflect2(i0 + ivec2(0, 1), size), 0);
    vec4 c11 = texelFetch(image_tex, sf_reflect2(i0 + ivec2(1, 1), size), 0);
    return mix(mix(c00, c10, f.x), mix(c01, c11, f.x), f.y);
}

// Bilinear base value at image pixel p, reflected outside the image (base_tex, loop_preview only).
vec4 sf_base_bilinear(vec2 p)
{
    ivec2 size = textureSize(base_tex, 0);
    vec2 base = floor(p);
    vec2 f = p - base;
    ivec2 i0 = ivec2(base);
    vec4 c00 = texelFetch(base_tex, sf_reflect2(i0, size), 0);
    vec4 c10 = texelFetch(base_tex, sf_reflect2(i0 + ivec2(1, 0), size), 0);
    vec4 c01 = texelFetch(base_tex, sf_reflect2(i0 + ivec2(0, 1), size), 0);
    vec4 c11 = texelFetch(base_tex, sf_reflect2(i0 + ivec2(1, 1), size), 0);
    return mix(mix(c00, c10, f.x), mix(c01, c11, f.x), f.y);
}

// Bilinear mask weight S at image pixel p (the composite mask S-up of algorithm.md §1.2 step 8).
float sf_mask_bilinear(vec2 p)
{
    ivec2 size = textureSize(mask_tex, 0);
    vec2 q = sf_rescale(p, textureSize(image_tex, 0), size);
    vec2 base = floor(q);
    vec2 f = q - base;
    ivec2 i0 = ivec2(base);
    float m00 = texelFetch(mask_tex, sf_reflect2(i0, size), 0).r;
    float m10 = texelFetch(mask_tex, sf_reflect2(i0 + ivec2(1, 0), size), 0).r;
    float m01 = texelFetch(mask_tex, sf_reflect2(i0 + ivec2(0, 1), size), 0).r;
    float m11 = texelFetch(mask_tex, sf_reflect2(i0 + ivec2(1, 1), size), 0).r;
    return clamp(mix(mix(m00, m10, f.x), mix(m01, m11, f.x), f.y), 0.0, 1.0);
}

// speed * S * M at image pixel p, in image px/frame, by nearest lookup (round half to even):
// the field the engine integrates (algorithm.md §1.2 steps 1 and 3).
vec2 sf_motion_at(vec2 p)
{
    ivec2 image_size = textureSize(image_tex, 0);
    ivec2 motion_size = textureSize(motion_tex, 0);
    ivec2 mask_size = textureSize(mask_tex, 0);
    vec2 pm = sf_rescale(p, image_size, motion_size);
    ivec2 qm = ivec2(sf_round_even(pm.x), sf_round_even(pm.y));
    vec2 motion = texelFetch(motion_tex, sf_reflect2(qm, motion_size), 0).rg;
    // Vectors are stored in motion-texture pixels; the walk happens in image pixels.
    motion *= vec2(image_size) / vec2(motion_size);
    vec2 ps = sf_rescale(p, image_size, mask_size);
    ivec2 qs = ivec2(sf_round_even(ps.x), sf_round_even(ps.y));
    float weight = texelFetch(mask_tex, sf_reflect2(qs, mask_size), 0).r;
    return speed * weight * motion;
}

// Position reached from p after `steps` Euler steps along sign * speed * S * M.
vec2 sf_integrate(vec2 p, int steps, float sign)
{
    for (int k = 0; k < steps; ++k) {
        p += sign * sf_motion_at(p);
    }
    return p;
}

// Each sway layer's angle a = 2 pi ((k t) mod N) / N at loop time t = frame + fraction frames, k = |sway_cycles|.
// Whole frames in integers, so a whole frame gives the engine's angle exactly (stages/sway.py).
vec4 sf_sway_angles(int frame, float fraction)
{
    vec4 angles = vec4(0.0);
    int wrapped = frame % frames;
    for (int layer = 0; layer < 4; ++layer) {
        int cycles = abs(sway_cycles[layer]);
        angles[layer] = SF_TAU * (float((cycles * wrapped) % frames) + float(cycles) * fraction) / float(frames);
    }
    return angles;
}

// The swaying regions at image texel `texel`, each layer at its angle (sf_sway_angles), summed in
// layer order as the engine sums them (stages/sway.py sway_displacement, combine_sway):
//   d      = sum of sin(a) C + (cos(a) - 1) S, the frame's displacement D(t) (0 at t = 0), image px
//   swing  = d over the layers that move the detail (k > 0; not a shimmer's), image px
//   rest   = sum of S over those layers, the oscillation at t = 0 whole pixels count from, P(0), image px
//   now    = sum of sin(a) C + cos(a) S = A u sin(a + phi), the oscillation P(t) = D(t) + P(0), image px
//   reach  = sum of the amplitudes A = sqrt(|C|^2 + |S|^2), the largest |P| can get, image px
void sf_sway(ivec2 texel, vec4 angles, out vec2 d, out vec2 swing, out vec2 rest, out vec2 now, out float reach)
{
    int rows = textureSize(image_tex, 0).y;
    d = vec2(0.0);
    swing = vec2(0.0);
    rest = vec2(0.0);
    now = vec2(0.0);
    reach = 0.0;
    for (int layer = 0; layer < 4; ++layer) {
        if (sway_cycles[layer] == 0) {
            continue;
        }
        vec4 wave = texelFetch(sway_tex, texel + ivec2(0, layer * rows), 0);
        float a = angles[layer];
        vec2 moved = sin(a) * wave.xy + (cos(a) - 1.0) * wave.zw;
        d += moved;
        if (sway_cycles[layer] > 0) {
            swing += moved;
            rest += wave.zw;
        }
        now += sin(a) * wave.xy + cos(a) * wave.zw;
        reach += sqrt(dot(wave.xy, wave.xy) + dot(wave.zw, wave.zw));
    }
}
